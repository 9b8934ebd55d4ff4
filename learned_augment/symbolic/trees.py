"""Expression trees over a small grammar, their numeric evaluation and the decimal trees of numbers.

The grammar: the variable ``x``; integer leaves :data:`INTEGERS` (the digits, ten and the small negative exponents
that decimal trees need); binary ``+ - * / pow``; unary ``sin cos tan exp log sqrt``; and ``=`` at the root of an
equation. Trees are immutable, so a rewrite returns a new tree that shares the untouched subtrees with the old one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

VARIABLE = "x"
INTEGERS: tuple[int, ...] = tuple(range(-4, 11))
BINARY: tuple[str, ...] = ("+", "-", "*", "/", "pow")
UNARY: tuple[str, ...] = ("sin", "cos", "tan", "exp", "log", "sqrt")
EQUALS = "="

# Symbol ids start at 1: 0 pads the fixed-size node tables and token strings (see encoding.py).
SYMBOLS: tuple[str, ...] = (VARIABLE, *(str(i) for i in INTEGERS), *BINARY, *UNARY, EQUALS)
SYMBOL_ID: dict[str, int] = {s: i + 1 for i, s in enumerate(SYMBOLS)}
NUM_SYMBOLS = len(SYMBOLS) + 1

Path = tuple[int, ...]


@dataclass(frozen=True)
class Node:
    """One node of an expression tree: a symbol of :data:`SYMBOLS` and its 0, 1 or 2 children."""

    op: str
    args: tuple[Node, ...] = ()

    def __post_init__(self) -> None:
        want = 2 if self.op in BINARY or self.op == EQUALS else 1 if self.op in UNARY else 0
        if self.op not in SYMBOL_ID or len(self.args) != want:
            raise ValueError(f"bad node {self.op!r} with {len(self.args)} children")

    def __deepcopy__(self, memo: dict[int, object]) -> Node:
        # Immutable: the copies fit_policy and the transform make before each TF (for TFs that edit in place) can
        # share it, which saves a recursive copy per TF call.
        return self

    def __str__(self) -> str:
        if not self.args:
            return self.op
        if self.op in UNARY or self.op == "pow":
            return f"{self.op}({', '.join(map(str, self.args))})"
        sep = f" {self.op} "
        return f"({sep.join(map(str, self.args))})" if self.op != EQUALS else sep.join(map(str, self.args))


def leaf(value: int | str) -> Node:
    """A leaf: ``"x"`` or an integer of :data:`INTEGERS`."""
    return Node(str(value))


def call(op: str, *args: Node) -> Node:
    return Node(op, tuple(args))


def equation(lhs: Node, rhs: Node) -> Node:
    return Node(EQUALS, (lhs, rhs))


def depth(node: Node) -> int:
    """Edges on the longest root-to-leaf path: a leaf is 0, ``sin(x)`` is 1, ``sin(x) = x`` is 2."""
    return 1 + max(depth(a) for a in node.args) if node.args else 0


def size(node: Node) -> int:
    """Number of nodes."""
    return 1 + sum(size(a) for a in node.args)


def positions(node: Node, path: Path = ()) -> Iterator[tuple[Path, Node]]:
    """Every ``(path, subtree)`` in pre-order; a path lists child indices from the root."""
    yield path, node
    for i, a in enumerate(node.args):
        yield from positions(a, (*path, i))


def replace(node: Node, path: Path, new: Node) -> Node:
    """``node`` with the subtree at ``path`` replaced by ``new``."""
    if not path:
        return new
    i = path[0]
    args = node.args[:i] + (replace(node.args[i], path[1:], new),) + node.args[i + 1 :]
    return Node(node.op, args)


def prefix_tokens(node: Node) -> list[str]:
    """The tree as a Polish-notation token string (unambiguous without brackets): ``= sin x x``."""
    return [n.op for _, n in positions(node)]


_UNARY_FN = {"sin": np.sin, "cos": np.cos, "tan": np.tan, "exp": np.exp, "log": np.log, "sqrt": np.sqrt}
_BINARY_FN = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "pow": np.power}


def evaluate(node: Node, x: np.ndarray | float) -> np.ndarray:
    """Value of an expression at the points ``x`` (any shape, float64); NaN where it is undefined.

    ``log``, ``sqrt``, ``/`` and ``pow`` outside their real domain, and overflow, give NaN (never an error), so
    callers compare values only where both sides are finite.
    """
    xs = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = _eval(node, xs)
    return np.where(np.isfinite(out), out, np.nan)


def _eval(node: Node, xs: np.ndarray) -> np.ndarray:
    if node.op == VARIABLE:
        return xs
    if not node.args:
        return np.full_like(xs, float(node.op))
    if node.op in _UNARY_FN:
        return _UNARY_FN[node.op](_eval(node.args[0], xs))
    if node.op == EQUALS:
        raise ValueError("evaluate the sides of an equation, not the equation")
    a, b = (_eval(c, xs) for c in node.args)
    return _BINARY_FN[node.op](a, b)


def decimal_tree(value: float, digits: int = 2) -> Node:
    """``value`` rounded to ``digits`` significant digits, as a tree of digits times powers of ten.

    ``0.43`` becomes ``4 * pow(10, -1) + 3 * pow(10, -2)``; a negative value is ``-1 *`` that. Exponents outside
    the integer leaves raise ``ValueError``: the last digit's exponent must be at least -4 (with ``digits=2``,
    |value| >= 1e-3) and the first at most 10 (|value| < 1e11).
    """
    if not np.isfinite(value):
        raise ValueError(f"no decimal tree for {value}")
    if round(value, 12) == 0.0:
        return leaf(0)
    mag = abs(value)
    exp = int(np.floor(np.log10(mag)))
    mantissa = round(mag / 10.0**exp, digits - 1)
    if mantissa >= 10:
        mantissa, exp = mantissa / 10, exp + 1
    ds = [int(c) for c in f"{mantissa:.{digits - 1}f}".replace(".", "")]
    if any(exp - k not in INTEGERS for k in range(len(ds))):
        raise ValueError(f"{value} is out of the decimal trees' exponent range")
    terms = [call("*", leaf(d), call("pow", leaf(10), leaf(exp - k))) for k, d in enumerate(ds) if d != 0 or k == 0]
    tree = terms[0]
    for t in terms[1:]:
        tree = call("+", tree, t)
    return call("*", leaf(-1), tree) if value < 0 else tree

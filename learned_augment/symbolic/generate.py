"""Equation data: true identities grown from seeds by axiom rewrites, false ones by perturbation, numeric ones.

* A **true identity** starts from a seed ``e = e`` (``e`` a random expression) and applies 1 to ``max_rewrites``
  axiom rewrites (:mod:`.axioms`), each at a random matching node of either side, so both sides keep one value.
* A **false identity** changes one node of a true one (a function for another, an operator for another, a leaf for
  another) and is kept only if the two sides then differ numerically (:func:`is_identity` is False).
* A **numeric equation** states an expression's value at a point, both as trees: ``sin(2.5) = 0.6`` with the numbers
  as :func:`~.trees.decimal_tree` s; its false twin states a perturbed value.

Every generator takes a ``numpy.random.Generator`` and draws nothing else, so data sets repeat with their seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .axioms import RULES
from .rewrites import rewrites
from .trees import (
    BINARY,
    UNARY,
    VARIABLE,
    Node,
    call,
    decimal_tree,
    depth,
    equation,
    evaluate,
    leaf,
    positions,
    replace,
)

SEED_LEAVES: tuple[str, ...] = (VARIABLE, VARIABLE, "1", "2", "3")
# Where identities are checked: spread over both signs so domain-restricted functions (log, sqrt) get both.
CHECK_POINTS = np.linspace(-3.7, 3.9, 41)
# Too few defined points and "no difference found" means nothing.
MIN_DEFINED = 5


@dataclass(frozen=True)
class Example:
    """One labelled equation: ``label`` 1 if it holds, 0 if not; ``kind`` is ``"symbolic"`` or ``"numeric"``."""

    tree: Node
    label: int
    kind: str = "symbolic"


def random_expression(rng: np.random.Generator, max_depth: int) -> Node:
    """A random expression of depth at most ``max_depth`` over :data:`SEED_LEAVES`, unary and binary operators."""
    if max_depth == 0 or rng.random() < 0.25:
        return leaf(SEED_LEAVES[int(rng.integers(len(SEED_LEAVES)))])
    if rng.random() < 0.45:
        return call(UNARY[int(rng.integers(len(UNARY)))], random_expression(rng, max_depth - 1))
    op = BINARY[int(rng.integers(len(BINARY)))]
    return call(op, random_expression(rng, max_depth - 1), random_expression(rng, max_depth - 1))


def side_values(eq: Node, points: np.ndarray = CHECK_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Values of the two sides of ``eq`` at ``points`` (NaN where undefined)."""
    return evaluate(eq.args[0], points), evaluate(eq.args[1], points)


def agreement(eq: Node, points: np.ndarray = CHECK_POINTS, rtol: float = 1e-6) -> tuple[int, int]:
    """``(defined, equal)``: points where both sides are finite and moderate, and those of them where they agree."""
    a, b = side_values(eq, points)
    ok = np.isfinite(a) & np.isfinite(b) & (np.abs(a) < 1e8) & (np.abs(b) < 1e8)
    close = np.isclose(a[ok], b[ok], rtol=rtol, atol=1e-7)
    return int(ok.sum()), int(close.sum())


def is_identity(eq: Node, points: np.ndarray = CHECK_POINTS, rtol: float = 1e-6) -> bool | None:
    """Whether the sides agree at every point where both are defined; ``None`` if too few points are."""
    defined, equal = agreement(eq, points, rtol)
    if defined < MIN_DEFINED:
        return None
    return equal == defined


def true_identity(rng: np.random.Generator, seed_depth: int, max_rewrites: int) -> Node | None:
    """A seed ``e = e`` rewritten 1..``max_rewrites`` times; ``None`` if no axiom changed it or it is not checkable."""
    e = random_expression(rng, seed_depth)
    eq = equation(e, e)
    if is_identity(eq) is None:
        return None
    for _ in range(int(rng.integers(1, max_rewrites + 1))):
        names = list(RULES)
        rng.shuffle(names)
        for name in names:
            options = [t for t in rewrites(eq, RULES[name]) if t != eq]
            if options:
                eq = options[int(rng.integers(len(options)))]
                break
    return eq if eq.args[0] != eq.args[1] else None


def perturb(eq: Node, rng: np.random.Generator) -> Node | None:
    """``eq`` with one node below the root changed, if that makes it numerically false; otherwise ``None``."""
    places = [(p, n) for p, n in positions(eq) if p]
    path, node = places[int(rng.integers(len(places)))]
    if node.op in UNARY:
        new = call(_other(UNARY, node.op, rng), *node.args)
    elif node.op in BINARY:
        new = call(_other(BINARY, node.op, rng), *node.args)
    else:
        new = leaf(_other(SEED_LEAVES, node.op, rng))
    out = replace(eq, path, new)
    return out if is_identity(out) is False else None


def _other(choices: tuple[str, ...], current: str, rng: np.random.Generator) -> str:
    rest = [c for c in dict.fromkeys(choices) if c != current]
    return rest[int(rng.integers(len(rest)))]


def symbolic_examples(
    rng: np.random.Generator, n: int, depths: range, seed_depth: int = 3, max_rewrites: int = 4
) -> list[Example]:
    """``n`` symbolic equations whose depth is in ``depths``, half true and half false, in random order.

    Each false equation perturbs a true one of the same construction, so the two classes share their depth and
    symbol statistics and the label is only in whether the sides agree.
    """
    out: list[Example] = []
    n_true = n_false = 0
    for _ in range(200 * n):
        if n_true + n_false == n:
            break
        eq = true_identity(rng, seed_depth, max_rewrites)
        if eq is None or depth(eq) not in depths:
            continue
        if n_true < n - n // 2 and (n_false >= n // 2 or rng.random() < 0.5):
            out.append(Example(eq, 1))
            n_true += 1
        elif n_false < n // 2:
            bad = perturb(eq, rng)
            if bad is not None and depth(bad) in depths:
                out.append(Example(bad, 0))
                n_false += 1
    if len(out) < n:
        raise RuntimeError(f"made only {len(out)} of {n} equations of depth {depths}; widen the depths")
    return out


def numeric_examples(rng: np.random.Generator, n: int, max_depth: int = 2) -> list[Example]:
    """``n`` numeric equations ``f(a) = value``, half true (value to 2 digits) and half false (a perturbed value).

    ``f`` is a random expression of depth 1..``max_depth`` in ``x``, ``a`` a one-decimal point in [-3, 3]; the
    point replaces ``x`` as a decimal tree, so the equation has no variable left.
    """
    out: list[Example] = []
    while len(out) < n:
        f = random_expression(rng, max_depth)
        if VARIABLE not in {m.op for _, m in positions(f)} or not f.args:
            continue
        a = round(float(rng.uniform(-3, 3)), 1)
        value = float(evaluate(f, a))
        if not np.isfinite(value) or abs(value) > 1e6 or abs(value) < 1e-3:
            continue
        label = len(out) % 2
        if not label:
            value *= float(rng.choice([-1.0, 1.0])) * float(rng.uniform(1.3, 3.0)) ** float(rng.choice([-1, 1]))
        try:
            rhs = decimal_tree(value)
        except ValueError:
            continue
        out.append(Example(equation(substitute(f, decimal_tree(a)), rhs), label, "numeric"))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def substitute(tree: Node, value: Node) -> Node:
    """``tree`` with every ``x`` replaced by ``value``."""
    if tree.op == VARIABLE:
        return value
    return Node(tree.op, tuple(substitute(a, value) for a in tree.args)) if tree.args else tree

"""Axioms as local rewrite rules: each maps a subtree to the subtrees it equals (in any direction it holds).

A rule returns every rewrite of the node it is given (an empty list where it does not match). Each rewrite keeps
the value of the subtree wherever both forms are defined, so rewriting one side of an equation keeps a true
equation true and a false one false. Rules that hold only under a sign condition in one direction
(``sqrt(a) * sqrt(a) = a``, ``log(a * b) = log(a) + log(b)``) are kept: where the condition fails one form is
undefined, and equations are only ever compared where both sides are. ``(a^b)^c = a^(b c)`` is left out: at
``a = -1, b = 2, c = 1/2`` both sides are defined and differ.
"""

from __future__ import annotations

from collections.abc import Callable

from .trees import VARIABLE, Node, call, leaf

Rule = Callable[[Node], list[Node]]

ONE, TWO, MINUS_ONE = leaf(1), leaf(2), leaf(-1)


def _is(node: Node, op: str) -> bool:
    return node.op == op


def commute(n: Node) -> list[Node]:
    """``a + b = b + a``, ``a * b = b * a``."""
    if n.op in ("+", "*") and n.args[0] != n.args[1]:
        return [call(n.op, n.args[1], n.args[0])]
    return []


def associate(n: Node) -> list[Node]:
    """``(a + b) + c = a + (b + c)``, and for ``*``."""
    if n.op not in ("+", "*"):
        return []
    a, b = n.args
    out = []
    if _is(a, n.op):
        out.append(call(n.op, a.args[0], call(n.op, a.args[1], b)))
    if _is(b, n.op):
        out.append(call(n.op, call(n.op, a, b.args[0]), b.args[1]))
    return out


def distribute(n: Node) -> list[Node]:
    """``a * (b ± c) = a b ± a c`` and ``(a ± b) * c = a c ± b c``."""
    if n.op != "*":
        return []
    a, b = n.args
    out = []
    if b.op in ("+", "-"):
        out.append(call(b.op, call("*", a, b.args[0]), call("*", a, b.args[1])))
    if a.op in ("+", "-"):
        out.append(call(a.op, call("*", a.args[0], b), call("*", a.args[1], b)))
    return out


def factor(n: Node) -> list[Node]:
    """``a b ± a c = a * (b ± c)`` and ``a c ± b c = (a ± b) * c``: distributivity read backwards."""
    if n.op not in ("+", "-") or not (_is(n.args[0], "*") and _is(n.args[1], "*")):
        return []
    (a, b), (c, d) = n.args[0].args, n.args[1].args
    out = []
    if a == c:
        out.append(call("*", a, call(n.op, b, d)))
    if b == d:
        out.append(call("*", call(n.op, a, c), b))
    return out


def units(n: Node) -> list[Node]:
    """``a + 0 = a``, ``a - 0 = a``, ``a * 1 = a``, ``a / 1 = a``, ``pow(a, 1) = a`` (either operand of + and *)."""
    if n.op not in ("+", "-", "*", "/", "pow"):
        return []
    a, b = n.args
    unit = leaf(0 if n.op in ("+", "-") else 1)
    if b == unit:
        return [a]
    if n.op in ("+", "*") and a == unit:
        return [b]
    return []


def inverses(n: Node) -> list[Node]:
    """``a - b = a + (-1) b`` and ``a / b = a * pow(b, -1)``, both ways."""
    if n.op == "-":
        return [call("+", n.args[0], call("*", MINUS_ONE, n.args[1]))]
    if n.op == "/":
        return [call("*", n.args[0], call("pow", n.args[1], MINUS_ONE))]
    if n.op == "+" and _is(n.args[1], "*") and n.args[1].args[0] == MINUS_ONE:
        return [call("-", n.args[0], n.args[1].args[1])]
    if n.op == "*" and _is(n.args[1], "pow") and n.args[1].args[1] == MINUS_ONE:
        return [call("/", n.args[0], n.args[1].args[0])]
    return []


def powers(n: Node) -> list[Node]:
    """``pow(a, 2) = a a`` and ``pow(a, b + c) = pow(a, b) pow(a, c)``, both ways."""
    out = []
    if n.op == "pow" and n.args[1] == TWO:
        out.append(call("*", n.args[0], n.args[0]))
    if n.op == "*" and n.args[0] == n.args[1]:
        out.append(call("pow", n.args[0], TWO))
    if n.op == "pow" and _is(n.args[1], "+"):
        a, (b, c) = n.args[0], n.args[1].args
        out.append(call("*", call("pow", a, b), call("pow", a, c)))
    if n.op == "*" and _is(n.args[0], "pow") and _is(n.args[1], "pow") and n.args[0].args[0] == n.args[1].args[0]:
        out.append(call("pow", n.args[0].args[0], call("+", n.args[0].args[1], n.args[1].args[1])))
    return out


def _square(a: Node) -> Node:
    return call("pow", a, TWO)


def pythagorean(n: Node) -> list[Node]:
    """``pow(sin(a), 2) + pow(cos(a), 2) = 1`` (either order); a leaf ``1`` becomes the sum with ``a = x``."""
    if n == ONE:
        return [call("+", _square(call("sin", leaf(VARIABLE))), _square(call("cos", leaf(VARIABLE))))]
    if n.op != "+" or not all(_is(t, "pow") and t.args[1] == TWO for t in n.args):
        return []
    u, v = n.args[0].args[0], n.args[1].args[0]
    if {u.op, v.op} == {"sin", "cos"} and u.args == v.args:
        return [ONE]
    return []


def tangent(n: Node) -> list[Node]:
    """``tan(a) = sin(a) / cos(a)``, both ways."""
    if n.op == "tan":
        return [call("/", call("sin", n.args[0]), call("cos", n.args[0]))]
    if n.op == "/" and n.args[0].op == "sin" and n.args[1].op == "cos" and n.args[0].args == n.args[1].args:
        return [call("tan", n.args[0].args[0])]
    return []


def double_angle(n: Node) -> list[Node]:
    """``sin(2 a) = 2 (sin(a) cos(a))`` and ``cos(2 a) = pow(cos(a), 2) - pow(sin(a), 2)``, both ways."""
    if n.op in ("sin", "cos") and _is(n.args[0], "*") and n.args[0].args[0] == TWO:
        a = n.args[0].args[1]
        if n.op == "sin":
            return [call("*", TWO, call("*", call("sin", a), call("cos", a)))]
        return [call("-", _square(call("cos", a)), _square(call("sin", a)))]
    if n.op == "*" and n.args[0] == TWO and _is(n.args[1], "*"):
        s, c = n.args[1].args
        if s.op == "sin" and c.op == "cos" and s.args == c.args:
            return [call("sin", call("*", TWO, s.args[0]))]
    if n.op == "-" and all(_is(t, "pow") and t.args[1] == TWO for t in n.args):
        c, s = n.args[0].args[0], n.args[1].args[0]
        if c.op == "cos" and s.op == "sin" and c.args == s.args:
            return [call("cos", call("*", TWO, c.args[0]))]
    return []


def angle_sum(n: Node) -> list[Node]:
    """``sin(a + b) = sin a cos b + cos a sin b`` and ``cos(a + b) = cos a cos b - sin a sin b``, both ways."""
    if n.op in ("sin", "cos") and _is(n.args[0], "+"):
        a, b = n.args[0].args
        sa, ca, sb, cb = call("sin", a), call("cos", a), call("sin", b), call("cos", b)
        if n.op == "sin":
            return [call("+", call("*", sa, cb), call("*", ca, sb))]
        return [call("-", call("*", ca, cb), call("*", sa, sb))]
    if n.op not in ("+", "-") or not all(_is(t, "*") for t in n.args):
        return []
    (p, q), (r, s) = n.args[0].args, n.args[1].args
    if not all(t.op in ("sin", "cos") for t in (p, q, r, s)):
        return []
    a, b = p.args[0], q.args[0]
    want_sin = (call("sin", a), call("cos", b), call("cos", a), call("sin", b))
    want_cos = (call("cos", a), call("cos", b), call("sin", a), call("sin", b))
    if n.op == "+" and (p, q, r, s) == want_sin:
        return [call("sin", call("+", a, b))]
    if n.op == "-" and (p, q, r, s) == want_cos:
        return [call("cos", call("+", a, b))]
    return []


def exponentials(n: Node) -> list[Node]:
    """``exp(a ± b) = exp(a) (* or /) exp(b)`` both ways, and ``log(exp(a)) = a``."""
    ops = {"+": "*", "-": "/"}
    if n.op == "exp" and n.args[0].op in ops:
        a, b = n.args[0].args
        return [call(ops[n.args[0].op], call("exp", a), call("exp", b))]
    if n.op in ("*", "/") and all(_is(t, "exp") for t in n.args):
        back = {v: k for k, v in ops.items()}[n.op]
        return [call("exp", call(back, n.args[0].args[0], n.args[1].args[0]))]
    if n.op == "log" and _is(n.args[0], "exp"):
        return [n.args[0].args[0]]
    return []


def logarithms(n: Node) -> list[Node]:
    """``log(a (* or /) b) = log(a) ± log(b)`` and ``log(pow(a, b)) = b log(a)``, both ways; ``exp(log(a)) = a``."""
    ops = {"*": "+", "/": "-"}
    if n.op == "log" and n.args[0].op in ops:
        a, b = n.args[0].args
        return [call(ops[n.args[0].op], call("log", a), call("log", b))]
    if n.op == "log" and _is(n.args[0], "pow"):
        a, b = n.args[0].args
        return [call("*", b, call("log", a))]
    if n.op in ("+", "-") and all(_is(t, "log") for t in n.args):
        back = {v: k for k, v in ops.items()}[n.op]
        return [call("log", call(back, n.args[0].args[0], n.args[1].args[0]))]
    if n.op == "*" and _is(n.args[1], "log"):
        return [call("log", call("pow", n.args[1].args[0], n.args[0]))]
    if n.op == "exp" and _is(n.args[0], "log"):
        return [n.args[0].args[0]]
    return []


def roots(n: Node) -> list[Node]:
    """``sqrt(a b) = sqrt(a) sqrt(b)`` both ways, and ``sqrt(a) sqrt(a) = a``."""
    if n.op == "sqrt" and _is(n.args[0], "*"):
        a, b = n.args[0].args
        return [call("*", call("sqrt", a), call("sqrt", b))]
    if n.op == "*" and all(_is(t, "sqrt") for t in n.args):
        a, b = n.args[0].args[0], n.args[1].args[0]
        return [a] if a == b else [call("sqrt", call("*", a, b))]
    return []


RULES: dict[str, Rule] = {
    "commute": commute,
    "associate": associate,
    "distribute": distribute,
    "factor": factor,
    "units": units,
    "inverses": inverses,
    "powers": powers,
    "pythagorean": pythagorean,
    "tangent": tangent,
    "double_angle": double_angle,
    "angle_sum": angle_sum,
    "exponentials": exponentials,
    "logarithms": logarithms,
    "roots": roots,
}

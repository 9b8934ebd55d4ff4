"""The equation generators: labels agree with numeric checks, depth control, decimal trees, reproducibility."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import sympy

from learned_augment.symbolic import decimal_tree, depth, evaluate, generate
from learned_augment.symbolic.trees import Node, leaf, prefix_tokens

POINTS = np.random.default_rng(5).uniform(-4.0, 4.0, 64)


@pytest.fixture(scope="module")
def symbolic() -> list[generate.Example]:
    return generate.symbolic_examples(np.random.default_rng(0), 200, range(3, 6))


def test_labels_are_balanced_and_depths_controlled(symbolic) -> None:
    assert Counter(e.label for e in symbolic) == {0: 100, 1: 100}
    assert {depth(e.tree) for e in symbolic} <= {3, 4, 5}
    assert all(e.tree.op == "=" and e.kind == "symbolic" for e in symbolic)


def test_true_identities_hold_and_false_ones_do_not_at_fresh_points(symbolic) -> None:
    for e in symbolic:
        defined, equal = generate.agreement(e.tree, POINTS, rtol=1e-5)
        if e.label:
            assert equal == defined, str(e.tree)
        else:
            assert equal < defined, str(e.tree)


def _sympy(node: Node) -> sympy.Expr:
    if node.op == "x":
        return sympy.Symbol("x")
    if not node.args:
        return sympy.Integer(int(node.op))
    args = [_sympy(a) for a in node.args]
    ops = {"+": sympy.Add, "*": sympy.Mul, "pow": sympy.Pow}
    if node.op in ops:
        return ops[node.op](*args)
    if node.op == "-":
        return args[0] - args[1]
    if node.op == "/":
        return args[0] / args[1]
    return getattr(sympy, node.op)(args[0])


def test_sympy_agrees_with_the_labels_where_it_can_decide(symbolic) -> None:
    """An independent check: sympy's simplification proves some true identities and evaluates false ones."""
    proved = refuted = 0
    for e in symbolic[:60]:
        lhs, rhs = _sympy(e.tree.args[0]), _sympy(e.tree.args[1])
        if e.label and sympy.simplify(sympy.expand_trig(lhs - rhs)) == 0:
            proved += 1
        if not e.label:
            for p in (0.7, 1.3, 2.1):
                a, b = complex(lhs.subs("x", p).evalf()), complex(rhs.subs("x", p).evalf())
                if abs(a.imag) + abs(b.imag) < 1e-12 and abs(a.real - b.real) > 1e-6 * (1 + abs(a.real)):
                    refuted += 1
                    break
    assert proved >= 10 and refuted >= 10


def test_same_seed_same_data() -> None:
    a = generate.symbolic_examples(np.random.default_rng(3), 30, range(2, 5))
    b = generate.symbolic_examples(np.random.default_rng(3), 30, range(2, 5))
    c = generate.symbolic_examples(np.random.default_rng(4), 30, range(2, 5))
    assert a == b and a != c


@pytest.mark.parametrize("value", [0.43, -2.5, 7.0, 123.0, 0.0012, 0.0])
def test_decimal_trees_hold_their_value_to_two_digits(value: float) -> None:
    got = float(evaluate(decimal_tree(value), 0.0))
    assert got == pytest.approx(value, rel=0.05, abs=1e-12)
    assert {n for n in str(decimal_tree(value)) if n.isalpha()} <= set("pow")


def test_numeric_equations_state_values_true_to_two_digits_or_clearly_wrong() -> None:
    examples = generate.numeric_examples(np.random.default_rng(1), 80)
    assert Counter(e.label for e in examples) == {0: 40, 1: 40}
    for e in examples:
        assert "x" not in prefix_tokens(e.tree) and e.kind == "numeric"
        lhs, rhs = (float(evaluate(side, 0.0)) for side in e.tree.args)
        close = abs(lhs - rhs) <= 0.051 * abs(lhs)
        assert close == bool(e.label), str(e.tree)


def test_a_leaf_has_depth_zero() -> None:
    assert depth(leaf("x")) == 0

"""Every axiom rewrite keeps equations true (checked numerically at random points) and false ones false."""

from __future__ import annotations

import numpy as np
import pytest

import learned_augment as la
from learned_augment.ops.base import Kind
from learned_augment.symbolic import TF_IDS, generate, rewrite_tfset
from learned_augment.symbolic.axioms import RULES
from learned_augment.symbolic.rewrites import DEPTH_LIMIT, NODE_LIMIT, rewrites
from learned_augment.symbolic.trees import Node, call, depth, equation, evaluate, leaf, positions, size

# Random points away from the check grid the generator uses, so agreement there is not built in.
POINTS = np.random.default_rng(123).uniform(-4.0, 4.0, 64)


@pytest.fixture(scope="module")
def equations() -> list[generate.Example]:
    return generate.symbolic_examples(np.random.default_rng(7), 120, range(2, 8))


def _holds(eq: Node) -> bool | None:
    return generate.is_identity(eq, POINTS, rtol=1e-5)


def test_the_tf_set_holds_every_axiom_as_a_custom_tf() -> None:
    tfset = rewrite_tfset()
    assert tfset.ids == TF_IDS and len(tfset) == len(RULES)
    assert all(e.tf.kind == Kind.CUSTOM and not e.tf.takes_magnitude for e in tfset)


@pytest.mark.parametrize("name", list(RULES))
def test_rule_keeps_true_equations_true_and_false_ones_false(name: str, equations) -> None:
    rule, applied = RULES[name], 0
    # The data's equations, and each of their sides as "side = side", which every rewrite of one side keeps true.
    cases = [(ex.tree, bool(ex.label)) for ex in equations]
    cases += [(equation(side, side), True) for ex in equations for side in ex.tree.args]
    for eq, label in cases:
        before = _holds(eq)
        assert before in (label, None), str(eq)
        for new in rewrites(eq, rule):
            after = _holds(new)
            # None: fewer than MIN_DEFINED points where both sides are defined (a rewrite may narrow the domain).
            assert after in (before, None), f"{name}: {eq}  ->  {new}"
            applied += before is not None
    assert applied > 0, f"{name} never matched; the test would prove nothing"


@pytest.mark.parametrize("name", list(RULES))
def test_each_rewrite_keeps_the_value_of_the_side_it_changes(name: str, equations) -> None:
    """Stronger than the equation check: the rewritten side equals the old one wherever both are defined."""
    for ex in equations[:60]:
        for new in rewrites(ex.tree, RULES[name]):
            for old_side, new_side in zip(ex.tree.args, new.args):
                a, b = evaluate(old_side, POINTS), evaluate(new_side, POINTS)
                ok = np.isfinite(a) & np.isfinite(b) & (np.abs(a) < 1e8)
                np.testing.assert_allclose(a[ok], b[ok], rtol=1e-5, atol=1e-7, err_msg=f"{old_side} -> {new_side}")


def test_known_rewrites() -> None:
    x = leaf("x")
    sin_sum = call("sin", call("+", x, leaf(2)))
    (expanded,) = RULES["angle_sum"](sin_sum)
    assert str(expanded) == "((sin(x) * cos(2)) + (cos(x) * sin(2)))"
    assert RULES["angle_sum"](expanded) == [sin_sum]
    assert RULES["tangent"](call("tan", x)) == [call("/", call("sin", x), call("cos", x))]
    assert RULES["units"](call("*", leaf(1), x)) == [x]
    assert RULES["commute"](call("-", x, leaf(1))) == []  # subtraction does not commute


def test_a_tf_that_matches_nowhere_returns_the_equation_unchanged() -> None:
    eq = equation(call("sin", leaf("x")), call("cos", leaf("x")))
    rng = np.random.default_rng(0)
    for tf_id in ("sym.tangent", "sym.exponentials", "sym.distribute"):
        assert la.apply_sequence(eq, [tf_id], rewrite_tfset(), rng=rng) is eq


def test_rewrites_respect_the_size_and_depth_limits() -> None:
    eq = equation(leaf(1), leaf(1))
    tfset = rewrite_tfset()
    rng = np.random.default_rng(0)
    for _ in range(40):  # pythagorean expands every 1 into sin^2 + cos^2, which holds more 1s... until the limits
        eq = la.apply_sequence(eq, ["sym.pythagorean", "sym.powers", "sym.units"], tfset, rng=rng)
        assert size(eq) <= NODE_LIMIT and depth(eq) <= DEPTH_LIMIT
    assert _holds(eq) is True
    assert any(n.op == "sin" for _, n in positions(eq))


def test_random_sequences_keep_every_label(equations) -> None:
    transform = la.LearnedPolicyTransform(la.UniformPolicy(rewrite_tfset(), seq_len=6), p=1.0, seed=3)
    changed = 0
    for ex in equations:
        new = transform(ex.tree)
        changed += new != ex.tree
        assert _holds(new) in (bool(ex.label), None), f"{ex.tree} -> {new} by {transform.last_params}"
    assert changed > len(equations) // 2

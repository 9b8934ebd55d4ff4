"""The axioms as TFs over equations, registered with :func:`learned_augment.register_tf` as the ``symbolic`` set.

Each TF applies its axiom once, at a node drawn uniformly from those where it matches (on either side of the
equation) and in one of the directions that match there. Where it matches nowhere, or every rewrite would make the
equation larger than :data:`NODE_LIMIT` nodes or deeper than :data:`DEPTH_LIMIT`, the equation is returned
unchanged: "not applicable", as Snorkel's TFs say it. The limits keep the fit's fixed-size node tables
(:func:`~learned_augment.symbolic.encoding.fit_collate`) and the end model's level loop bounded.
"""

from __future__ import annotations

import numpy as np

from ..ops.base import TF, register_tf
from ..ops.tfset import TFSet
from .axioms import RULES, Rule
from .trees import Node, depth, positions, replace, size

NODE_LIMIT = 64
DEPTH_LIMIT = 9
PREFIX = "sym."
TF_IDS: list[str] = [PREFIX + name for name in RULES]


def rewrites(tree: Node, rule: Rule) -> list[Node]:
    """Every tree one application of ``rule`` makes from ``tree`` within the size and depth limits."""
    out = []
    for path, node in positions(tree):
        for new in rule(node):
            result = replace(tree, path, new)
            if size(result) <= NODE_LIMIT and depth(result) <= DEPTH_LIMIT:
                out.append(result)
    return out


def apply_rule(tree: Node, rule: Rule, rng: np.random.Generator) -> Node:
    """One of :func:`rewrites` drawn uniformly, or ``tree`` itself where there is none."""
    options = rewrites(tree, rule)
    return options[int(rng.integers(len(options)))] if options else tree


def _make_tf(name: str, rule: Rule) -> TF:
    def tf(tree: Node, rng: np.random.Generator) -> Node:
        return apply_rule(tree, rule, rng)

    tf.__doc__ = f"Rewrite by {(rule.__doc__ or name).strip()}"
    # Registering the same function object again is a no-op; a re-import makes new ones, hence overwrite.
    return register_tf(PREFIX + name, overwrite=True)(tf)


REWRITE_TFS: dict[str, TF] = {PREFIX + name: _make_tf(name, rule) for name, rule in RULES.items()}


def rewrite_tfset() -> TFSet:
    """The TF set of every axiom rewrite, in :data:`TF_IDS` order."""
    return TFSet(TF_IDS, name="symbolic")

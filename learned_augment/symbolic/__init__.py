"""Symbolic expressions for TANDA: equation data, axiom-rewrite TFs and Tree-LSTM verifiers.

Importing this package registers the rewrite TFs (``sym.commute``, ``sym.angle_sum``, ...), so a policy fitted
over :func:`rewrite_tfset` can be saved, loaded and applied with :class:`learned_augment.LearnedPolicyTransform`
to equation trees like any other policy.
"""

from .encoding import fit_collate, node_table, token_table
from .generate import Example, is_identity, numeric_examples, symbolic_examples
from .models import SequenceVerifier, TreeLSTM, TreeVerifier
from .rewrites import TF_IDS, rewrite_tfset
from .trees import Node, decimal_tree, depth, equation, evaluate

__all__ = [
    "TF_IDS",
    "Example",
    "Node",
    "SequenceVerifier",
    "TreeLSTM",
    "TreeVerifier",
    "decimal_tree",
    "depth",
    "equation",
    "evaluate",
    "fit_collate",
    "is_identity",
    "node_table",
    "numeric_examples",
    "rewrite_tfset",
    "symbolic_examples",
    "token_table",
]

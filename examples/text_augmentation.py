"""Learned augmentation on text: a TANDA policy over token-list TFs, used through the same transform API as images.

    python examples/text_augmentation.py --out runs/text_augmentation/result.json

What it shows, on a synthetic corpus of short template sentences with a sentiment label (nothing is downloaded):

1. five custom TFs over token lists, registered with ``@la.register_tf``: ``synonym_swap`` (from a small built-in
   synonym table), ``swap_adjacent``, ``word_dropout(0.2)``, ``duplicate_word`` and one destructive TF,
   ``shuffle_words``, which scrambles the word order;
2. ``la.fit_policy`` on the unlabeled sentences with a user ``discriminator`` (embedding + a tiny GRU, ending in
   ``nn.Linear(.., 1)``) and a ``collate`` that pads token ids to a fixed length; the fitted TF frequencies are
   printed as a table, the destructive TF's share against the uniform one (1/5);
3. the fitted policy applied exactly as for images: ``la.LearnedPolicyTransform(policy, p=1.0, seed=0)(tokens)``
   on a token list (``p=1.0``, so every example shows the policy's TFs), and a ``la.PolicyAugmentedDataset`` over
   ``(tokens, label)`` pairs read by a ``DataLoader`` with a collate of its own.

The default run (200 steps) takes about 6 s on one CPU core, most of it importing torch. ``--out`` writes what
was printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import learned_augment as la

# ------------------------------------------------------------------------------------------ corpus

# Every word of a synonym group also appears in the corpus, so a synonym swap yields a sentence the data could hold.
SYNONYMS: list[list[str]] = [
    ["happy", "glad", "cheerful"],
    ["good", "fine", "nice"],
    ["great", "excellent", "wonderful"],
    ["sad", "unhappy", "gloomy"],
    ["bad", "poor", "awful"],
    ["angry", "annoyed", "upset"],
    ["sees", "watches", "notices"],
    ["likes", "loves", "enjoys"],
    ["big", "large", "huge"],
    ["small", "little", "tiny"],
]
POSITIVE = ["happy", "glad", "cheerful", "good", "fine", "nice", "great", "excellent", "wonderful"]
NEGATIVE = ["sad", "unhappy", "gloomy", "bad", "poor", "awful", "angry", "annoyed", "upset"]
NOUNS = ["cat", "dog", "bird", "child", "teacher", "farmer"]
THINGS = ["ball", "book", "kite", "boat", "apple"]
PLACES = ["park", "garden", "house", "river", "school"]
VERBS = ["sees", "watches", "notices", "likes", "loves", "enjoys"]
SIZES = ["big", "large", "huge", "small", "little", "tiny"]

# {s}: a sentiment adjective, which sets the label (1 positive, 0 negative).
TEMPLATES: list[str] = [
    "the {s} {noun} {verb} the {size} {thing}",
    "a {size} {noun} {verb} a {thing} in the {place}",
    "the {noun} in the {place} is very {s}",
    "my {s} {noun} {verb} the {place} today",
    "the {noun} {verb} a {s} {thing} near the {place}",
]

PAD = "<pad>"
FUNCTION_WORDS = ["the", "a", "my", "in", "near", "is", "very", "today"]
VOCAB: list[str] = [PAD] + sorted(set(FUNCTION_WORDS + POSITIVE + NEGATIVE + NOUNS + THINGS + PLACES + VERBS + SIZES))
WORD_ID: dict[str, int] = {w: i for i, w in enumerate(VOCAB)}
# Longest template (9 words) plus room for duplications; longer sequences are cut.
MAX_LEN = 16


def make_corpus(n: int, seed: int) -> list[tuple[list[str], int]]:
    """``n`` sentences as ``(tokens, label)``: a template filled with random words, label 1 for a positive word."""
    rng = np.random.default_rng(seed)
    out: list[tuple[list[str], int]] = []
    for _ in range(n):
        label = int(rng.integers(2))
        words = {
            "s": rng.choice(POSITIVE if label else NEGATIVE),
            "noun": rng.choice(NOUNS),
            "verb": rng.choice(VERBS),
            "size": rng.choice(SIZES),
            "thing": rng.choice(THINGS),
            "place": rng.choice(PLACES),
        }
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        out.append((template.format(**words).split(), label))
    return out


# ------------------------------------------------------------------------------------------ TFs over token lists

# Each TF returns a new list: fit_policy hands the corpus's own lists to the TFs, so one that edited its input in
# place would edit the training data.
_SYNONYM_OF: dict[str, list[str]] = {w: [v for v in group if v != w] for group in SYNONYMS for w in group}


@la.register_tf("synonym_swap")
def synonym_swap(tokens: list[str], rng: np.random.Generator) -> list[str]:
    """Replace one word that has synonyms by one of them."""
    where = [i for i, w in enumerate(tokens) if w in _SYNONYM_OF]
    if not where:
        return tokens
    i = where[int(rng.integers(len(where)))]
    choices = _SYNONYM_OF[tokens[i]]
    return tokens[:i] + [choices[int(rng.integers(len(choices)))]] + tokens[i + 1 :]


@la.register_tf("swap_adjacent")
def swap_adjacent(tokens: list[str], rng: np.random.Generator) -> list[str]:
    """Swap two neighbouring words."""
    if len(tokens) < 2:
        return tokens
    i = int(rng.integers(len(tokens) - 1))
    return tokens[:i] + [tokens[i + 1], tokens[i]] + tokens[i + 2 :]


@la.register_tf("word_dropout")
def word_dropout(tokens: list[str], magnitude: float, rng: np.random.Generator) -> list[str]:
    """Drop each word with probability ``magnitude`` (at least one word is kept)."""
    kept = [w for w, r in zip(tokens, rng.random(len(tokens))) if r >= magnitude]
    return kept or tokens[:1]


@la.register_tf("duplicate_word")
def duplicate_word(tokens: list[str], rng: np.random.Generator) -> list[str]:
    """Repeat one word in place."""
    if not tokens:
        return tokens
    i = int(rng.integers(len(tokens)))
    return tokens[: i + 1] + tokens[i:]


@la.register_tf("shuffle_words")
def shuffle_words(tokens: list[str], rng: np.random.Generator) -> list[str]:
    """Put the words in a random order: the destructive TF, which the policy should learn to avoid."""
    return [tokens[int(i)] for i in rng.permutation(len(tokens))]


TF_IDS: list[str] = ["synonym_swap", "swap_adjacent", "word_dropout(0.2)", "duplicate_word", "shuffle_words"]
DESTRUCTIVE = "shuffle_words"


# ------------------------------------------------------------------------------------------ model and collates


def token_ids(tokens: Sequence[str], length: int) -> list[int]:
    """Ids of ``tokens``, cut or padded with ``<pad>`` (id 0) to ``length``."""
    ids = [WORD_ID[w] for w in tokens[:length]]
    return ids + [0] * (length - len(ids))


def fit_collate(items: list[list[str]]) -> torch.Tensor:
    """Token lists -> ``(B, MAX_LEN)`` int64 token ids, the discriminator's input during the fit.

    The length is fixed, not the batch's longest: ``fit_policy`` stacks the collated batches of every prefix of the
    TF sequences, which must have one shape.
    """
    return torch.tensor([token_ids(t, MAX_LEN) for t in items], dtype=torch.long)


def loader_collate(batch: list[tuple[list[str], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, label)`` pairs -> ``(B, T)`` int64 ids padded to the batch's longest sentence, ``(B,)`` labels."""
    length = max(len(tokens) for tokens, _ in batch)
    ids = torch.tensor([token_ids(tokens, length) for tokens, _ in batch], dtype=torch.long)
    return ids, torch.tensor([label for _, label in batch], dtype=torch.long)


class SentenceCritic(nn.Module):
    """Embedding + one-layer GRU over ``(B, T)`` token ids (any numeric dtype) -> ``(B, 1)`` logits.

    Order-aware on purpose: a mean of embeddings cannot tell a shuffled sentence from a real one.
    """

    def __init__(self, vocab_size: int, dim: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(self.embed(ids.long()))
        return self.head(last[0])


# ------------------------------------------------------------------------------------------ the run


def frequency_table(policy: la.Policy) -> list[dict[str, Any]]:
    """One row per TF: its id, fitted frequency and the uniform frequency 1/K."""
    probs = policy.probabilities()
    uniform = 1.0 / len(probs)
    return [
        {"tf": e.id, "share": round(float(p), 4), "uniform": round(uniform, 4)} for e, p in zip(policy.tfset, probs)
    ]


def fit_text_policy(sentences: list[list[str]], steps: int, seed: int) -> la.Policy:
    """A mean-field policy over :data:`TF_IDS`, fitted on ``sentences`` against a :class:`SentenceCritic`."""
    torch.manual_seed(seed)
    return la.fit_policy(
        sentences,
        TF_IDS,
        "mean_field",
        seq_len=3,
        discriminator=SentenceCritic(len(VOCAB)),
        collate=fit_collate,
        steps=steps,
        batch_size=16,
        n_seqs=4,
        d_lr=3e-3,
        g_lr=0.5,
        # Off: token-list TFs are often exact no-ops (a synonym swap undone by the next one, a dropout that drops
        # nothing), and the diversity term charges an exact no-op diversity / 1e-6 (1000 at the default), far above
        # any discriminator cost: with the default the policy collapsed onto a TF that is almost never one here,
        # swap_adjacent (share 1.000 at 200 steps). The entropy bonus keeps the harmless TFs in play instead.
        diversity=0.0,
        entropy=1.0,
        seed=seed,
        progress=False,
        eval_every=0,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the example with command-line ``argv``; returns what it printed, as written to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200, help="fit steps")
    ap.add_argument("--seed", type=int, default=0, help="seed of the corpus, the fit and the transforms")
    ap.add_argument("--sentences", type=int, default=400, help="size of the synthetic corpus")
    ap.add_argument("--out", type=Path, default=None, help="write what was printed to this JSON file")
    a = ap.parse_args(argv)
    if a.steps < 1 or a.sentences < 1:
        ap.error("--steps and --sentences must be at least 1")

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    corpus = make_corpus(a.sentences, a.seed)
    sentences = [tokens for tokens, _ in corpus]
    print(f"corpus: {len(corpus)} sentences, vocabulary of {len(VOCAB) - 1} words, e.g. {' '.join(sentences[0])!r}")

    policy = fit_text_policy(sentences, a.steps, a.seed)
    fit_s = time.perf_counter() - t0

    table = frequency_table(policy)
    print(f"\nfitted TF frequencies ({a.steps} steps, {fit_s:.1f} s):")
    print(f"  {'tf':<20}{'share':>8}{'uniform':>9}")
    for row in table:
        mark = "  <- destructive" if row["tf"] == DESTRUCTIVE else ""
        print(f"  {row['tf']:<20}{row['share']:>8.3f}{row['uniform']:>9.3f}{mark}")
    destructive = next(row["share"] for row in table if row["tf"] == DESTRUCTIVE)
    uniform = 1.0 / len(table)
    print(f"destructive share {destructive:.3f} vs uniform {uniform:.3f}")

    transform = la.LearnedPolicyTransform(policy, p=1.0, seed=a.seed)
    examples = []
    print("\nLearnedPolicyTransform(policy, p=1.0, seed) on token lists:")
    for tokens in sentences[:4]:
        augmented = transform(tokens)
        applied = (transform.last_params or {}).get("tf_ids_str", [])
        examples.append({"original": tokens, "augmented": augmented, "tfs": applied})
        print(f"  {' '.join(tokens)!r}\n    -> {' '.join(augmented)!r}  [{', '.join(applied)}]")

    dataset = la.PolicyAugmentedDataset(corpus, la.LearnedPolicyTransform(policy, p=1.0, seed=a.seed), seed=a.seed)
    loader = DataLoader(dataset, batch_size=8, shuffle=False, collate_fn=loader_collate)
    ids, labels = next(iter(loader))
    print(f"\nPolicyAugmentedDataset + DataLoader: a batch of ids {tuple(ids.shape)}, labels {labels.tolist()}")
    first_batch = [[VOCAB[int(i)] for i in row if int(i) != 0] for row in ids]
    for words in first_batch[:3]:
        print(f"  {' '.join(words)!r}")

    result: dict[str, Any] = {
        "args": {"steps": a.steps, "seed": a.seed, "sentences": a.sentences},
        "vocabulary_size": len(VOCAB) - 1,
        "tfs": policy.tfset.ids,
        "frequencies": table,
        "destructive_tf": DESTRUCTIVE,
        "destructive_share": destructive,
        "uniform_share": uniform,
        "transform_examples": examples,
        "loader_batch": {"ids_shape": list(ids.shape), "labels": labels.tolist(), "sentences": first_batch},
        "fit_seconds": round(fit_s, 2),
    }
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {a.out}")
    return result


if __name__ == "__main__":
    main()

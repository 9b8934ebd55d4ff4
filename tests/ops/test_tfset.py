"""TF sets and TF ids: the vocabulary policies index into and policy files store."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learned_augment import UnknownNameError
from learned_augment.ops import (
    NAMED_SETS,
    Kind,
    TFEntry,
    TFSet,
    cifar10_tfs,
    default_tfs,
    get_tf,
    get_tfset,
    mnist_tfs,
    registered_tfs,
)

SET_ENTRIES = sorted({e for make in NAMED_SETS.values() for e in make()}, key=lambda e: e.id)
BUILTIN_TFS = [n for n in registered_tfs() if get_tf(n).kind != Kind.CUSTOM]

# TANDA (Ratner et al., 2017), appendix: the vocabularies its MNIST and CIFAR-10 experiments used.
TANDA_MNIST = [
    "rotate(+2.5)", "rotate(-2.5)", "rotate(+5)", "rotate(-5)", "rotate(+10)", "rotate(-10)",
    "zoom(0.9)", "zoom(1.1)",
    "shear_x(+0.1)", "shear_x(-0.1)", "shear_x(+0.2)", "shear_x(-0.2)", "shear_x(+0.4)", "shear_x(-0.4)",
    "swirl(+0.1)", "swirl(-0.1)", "swirl(+0.2)", "swirl(-0.2)", "swirl(+0.4)", "swirl(-0.4)",
    "elastic(1)", "elastic(1.25)", "elastic(1.5)",
    "erosion", "dilation",
]  # fmt: skip
TANDA_CIFAR10 = [
    "rotate(+2.5)", "rotate(-2.5)", "rotate(+5)", "rotate(-5)",
    "zoom(0.9)", "zoom(1.1)", "zoom(0.75)", "zoom(1.25)",
    "shear_x(+0.1)", "shear_x(-0.1)", "shear_x(+0.25)", "shear_x(-0.25)",
    "swirl(+0.1)", "swirl(-0.1)", "swirl(+0.25)", "swirl(-0.25)",
    "hue(+0.1)", "hue(-0.1)", "hue(+0.25)", "hue(-0.25)",
    "contrast(0.75)", "contrast(1.25)", "contrast(0.5)", "contrast(1.5)",
    "brightness(0.75)", "brightness(1.25)", "brightness(0.5)", "brightness(1.5)",
    "color(0.75)", "color(1.25)", "color(0.5)", "color(1.5)",
    "hflip",
]  # fmt: skip


# ------------------------------------------------------------------------------------------------------ named sets


def test_named_set_sizes() -> None:
    assert len(mnist_tfs()) == 25
    assert len(cifar10_tfs()) == 33
    assert len(default_tfs()) >= 33


def test_tanda_sets_match_the_paper() -> None:
    assert mnist_tfs().ids == TANDA_MNIST
    assert cifar10_tfs().ids == TANDA_CIFAR10


@pytest.mark.parametrize("name", list(NAMED_SETS))
def test_named_sets(name: str) -> None:
    ts = get_tfset(name)
    assert ts.name == name
    assert ts == NAMED_SETS[name]()  # equal when built twice: policy files rebuild them by name
    assert hash(ts) == hash(NAMED_SETS[name]())
    assert get_tfset(name) is ts  # built once per name: apply_sequence(img, ids, "cifar10") does not re-parse
    assert len(set(ts.ids)) == len(ts)
    assert f"'{name}'" in repr(ts) and f"K={len(ts)}" in repr(ts)
    assert TFSet(ts.ids) == ts  # the ids alone rebuild the set
    for i, e in enumerate(ts):
        assert ts[i] == e and ts.index_of(e) == i and ts.index_of(e.id) == i


@pytest.mark.parametrize("entry", SET_ENTRIES, ids=str)
def test_ids_round_trip(entry: TFEntry) -> None:
    assert TFEntry.parse(entry.id) == entry
    assert str(entry) == entry.id


def test_id_formats() -> None:
    assert TFEntry("rotate", 5.0).id == "rotate(+5)"  # signed TFs show the sign
    assert TFEntry("rotate", -2.5).id == "rotate(-2.5)"
    assert TFEntry("zoom", 1.1).id == "zoom(1.1)"
    assert TFEntry("hflip").id == "hflip"
    assert TFEntry.parse(" rotate( 5 ) ") == TFEntry("rotate", 5.0)
    assert TFEntry.parse("hflip()") == TFEntry("hflip")


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from([n for n in BUILTIN_TFS if get_tf(n).takes_magnitude]), data=st.data())
def test_ids_round_trip_any_magnitude(name: str, data: st.DataObject) -> None:
    # Ids are what policy files store: every valid magnitude must survive, not just the short ones the shipped sets
    # use; every other finite one is refused.
    lo, hi = get_tf(name).valid or (-math.inf, math.inf)
    magnitude = data.draw(st.floats(allow_nan=False, allow_infinity=False))
    entry = TFEntry(name, magnitude)
    if not lo <= magnitude <= hi:
        with pytest.raises(ValueError, match=f"TF '{name}' takes magnitudes in"):
            TFEntry.parse(entry.id)
        magnitude = data.draw(st.floats(lo, hi))
        entry = TFEntry(name, magnitude)
    assert TFEntry.parse(entry.id) == entry
    assert TFSet([entry.id]).ids == [entry.id]


def test_close_magnitudes_get_distinct_ids() -> None:
    ts = TFSet([("rotate", 1 / 3), ("rotate", 1 / 3 + 1e-12)])
    assert len(set(ts.ids)) == 2
    assert [TFEntry.parse(i) for i in ts.ids] == list(ts)


# ------------------------------------------------------------------------------------------------------ TFSet


def test_tfset_accepts_ids_tuples_and_entries() -> None:
    ts = TFSet(["rotate(+5)", ("zoom", 1.1), ("hflip",), ("vflip", None), TFEntry("invert")], name="mine")
    assert ts.ids == ["rotate(+5)", "zoom(1.1)", "hflip", "vflip", "invert"]
    assert ts.name == "mine"
    assert ts[1:3] == (TFEntry("zoom", 1.1), TFEntry("hflip"))
    assert list(ts) == list(ts[:])
    assert ts.index_of("rotate(5)") == 0  # any spelling of the same entry
    assert ts.index_of(TFEntry("hflip")) == 2
    assert ts != TFSet(["rotate(+5)"]) and ts != ts.ids


def test_duplicates_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"duplicate entries in TF set: \['rotate\(\+5\)'\]"):
        TFSet(["rotate(+5)", "zoom(1.1)", "rotate(5)"])
    with pytest.raises(ValueError, match="duplicate"):
        TFSet([("hflip",), "hflip"])


def test_duplicate_check_takes_linear_time() -> None:
    # Checking K ids against each other pairwise took 6 s at K = 20,000 (hours for a hostile policy file).
    entries = [TFEntry("rotate", i / 100) for i in range(20_000)]
    start = time.perf_counter()
    assert len(TFSet(entries)) == 20_000
    assert time.perf_counter() - start < 2.0
    with pytest.raises(ValueError, match=r"duplicate entries in TF set: \['rotate\(\+0\)', .*\] and 95 more$"):
        TFSet(entries[:100] * 2)


def test_empty_set_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        TFSet([])


@pytest.mark.parametrize(
    ("entry", "error", "match"),
    [
        (("hflip", 3), ValueError, "takes no magnitude"),
        (("rotate",), ValueError, "needs a magnitude"),
        (("rotate", None), ValueError, "needs a magnitude"),
        (("rotate", float("nan")), ValueError, "finite"),
        (("nope", 1.0), KeyError, "unknown TF 'nope'"),
        (TFEntry("hflip", 3.0), ValueError, "takes no magnitude"),
        (("rotate", 1, 2), TypeError, "cannot make a TF entry"),
        (5, TypeError, "cannot make a TF entry"),
    ],
)
def test_bad_entries_are_rejected(entry: object, error: type, match: str) -> None:
    # Such entries would make ids that TFEntry.parse refuses, i.e. policy files that cannot be loaded.
    with pytest.raises(error, match=match):
        TFSet([entry])


def test_index_of_missing_entry() -> None:
    with pytest.raises(KeyError, match=r"'rotate\(\+7\)' is not in this TF set \(25 entries\)"):
        mnist_tfs().index_of("rotate(+7)")


# ------------------------------------------------------------------------------------------------------ get_tfset


def test_get_tfset() -> None:
    ts = get_tfset(["rotate(+5)", "hflip"])
    assert isinstance(ts, TFSet) and ts.ids == ["rotate(+5)", "hflip"]
    assert get_tfset(ts) is ts
    assert get_tfset(("zoom(1.1)",)).ids == ["zoom(1.1)"]


def test_get_tfset_errors() -> None:
    with pytest.raises(KeyError, match=r"unknown TF set 'cifar100'; named sets are \['cifar10', 'default', 'mnist'\]"):
        get_tfset("cifar100")
    with pytest.raises(TypeError, match="expected a TF set name, a TFSet or a list of TF ids, got int"):
        get_tfset(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one entry"):
        get_tfset([])
    with pytest.raises(KeyError, match="unknown TF 'rotat'"):
        get_tfset(["rotat(+5)"])


# ------------------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("rotate(", "malformed TF id 'rotate\\('"),
        ("rotate(abc)", "malformed magnitude in TF id 'rotate\\(abc\\)'"),
        ("hflip(3)", "TF 'hflip' takes no magnitude"),
        ("rotate", "TF 'rotate' needs a magnitude"),
        ("rotate()", "TF 'rotate' needs a magnitude"),
        ("rotate(nan)", "magnitude must be finite"),
        ("rotate(-inf)", "magnitude must be finite"),
        ("rotate(1e400)", "magnitude must be finite"),
        ("rotate(5)(3)", "malformed TF id"),
        ("rotate 5", "malformed TF id"),
        ("(5)", "malformed TF id"),
        ("", "malformed TF id"),
        ("5rotate(5)", "malformed TF id"),
    ],
)
def test_malformed_ids(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TFEntry.parse(text)


def test_hostile_ids_are_refused_in_linear_time() -> None:
    # Spaces on both sides of the magnitude made matching cubic: 1,500 of them took seconds.
    start = time.perf_counter()
    with pytest.raises(ValueError, match="malformed TF id"):
        TFEntry.parse("a(" + " " * 190 + "x")
    with pytest.raises(ValueError, match=r"^TF id of 1502 characters, more than 200: 'a\(  "):
        TFEntry.parse("a(" + " " * 1500)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("blur(1e9)", r"TF 'blur' takes magnitudes in \[0, 50\], got 'blur\(1e9\)'"),
        ("zoom(0)", r"TF 'zoom' takes magnitudes in \[0.01, 100\], got 'zoom\(0\)'"),
        ("zoom(-1)", r"TF 'zoom' takes magnitudes in \[0.01, 100\]"),
        ("posterize(100)", r"TF 'posterize' takes magnitudes in \[1, 8\]"),
        ("posterize(0)", r"TF 'posterize' takes magnitudes in \[1, 8\]"),
        ("sharpness(1e308)", r"TF 'sharpness' takes magnitudes in \[0, 100\]"),
        ("gamma(0)", r"TF 'gamma' takes magnitudes in \[0.01, 100\]"),
        ("cutout(2)", r"TF 'cutout' takes magnitudes in \[0, 1\]"),
        (("blur", 1e9), r"TF 'blur' takes magnitudes in \[0, 50\], got 'blur\(1000000000.0\)'"),
        (TFEntry("noise", -0.1), r"TF 'noise' takes magnitudes in \[0, 1\]"),
    ],
)
def test_magnitudes_outside_the_valid_range_are_refused_when_the_entry_is_made(entry: object, match: str) -> None:
    # Not at the first call, inside a DataLoader worker, with OpenCV's message.
    with pytest.raises(ValueError, match=match):
        TFSet([entry])
    if isinstance(entry, str):
        with pytest.raises(ValueError, match=match):
            TFEntry.parse(entry)


@pytest.mark.parametrize("name", BUILTIN_TFS)
def test_every_builtin_tf_with_a_magnitude_declares_its_valid_range(name: str) -> None:
    tf = get_tf(name)
    assert (tf.valid is not None) == tf.takes_magnitude, name
    if tf.valid is not None:
        lo, hi = tf.valid
        TFEntry.parse(f"{name}({lo})")
        TFEntry.parse(f"{name}({hi})")


def test_unknown_names_are_key_and_value_errors_that_print_plainly() -> None:
    # KeyError's str() is its repr (quoted, escaped); these print the message as written and are ValueErrors too.
    for lookup, start in [
        (lambda: get_tf("rotat"), "unknown TF 'rotat'."),
        (lambda: TFEntry.parse("warp_drive(+5)"), "unknown TF 'warp_drive'."),
        (lambda: get_tfset("imagenet"), "unknown TF set 'imagenet'; named sets are"),
        (lambda: get_tfset(["hflip", "nope"]), "unknown TF 'nope'."),
        (lambda: mnist_tfs().index_of("rotate(+7)"), "'rotate(+7)' is not in this TF set"),
    ]:
        with pytest.raises(UnknownNameError) as info:
            lookup()
        assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
        assert str(info.value).startswith(start), str(info.value)
        assert "\n" not in str(info.value) and "\\" not in str(info.value)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(KeyError, match="unknown TF 'rotat'. Did you mean rotate"):
        TFEntry.parse("rotat(+5)")
    with pytest.raises(KeyError, match="Register your own with @learned_augment.register_tf\\('qqqq'\\)"):
        TFEntry.parse("qqqq")
    with pytest.raises(KeyError) as info:
        TFEntry.parse("qqqq")
    assert "Did you mean" not in str(info.value)


def test_parse_needs_a_string() -> None:
    with pytest.raises(TypeError, match="TF id must be a string, got int"):
        TFEntry.parse(5)  # type: ignore[arg-type]


def test_entry_tf_and_magnitudes() -> None:
    e = TFEntry.parse("zoom(1.25)")
    assert e.tf is get_tf("zoom") and math.isclose(e.magnitude or 0, 1.25)
    assert TFEntry.parse("hflip").magnitude is None

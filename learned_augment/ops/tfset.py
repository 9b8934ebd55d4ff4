"""TF sets: ordered vocabularies of (TF, magnitude) entries with stable string ids such as ``rotate(+5)``."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Union, overload

from ..errors import UnknownNameError
from .base import NAME_PATTERN, TF, get_tf

# Applied to stripped text, with the magnitude stripped afterwards: every part matches a disjoint set of characters,
# so matching takes linear time (optional spaces on both sides of a lazy group made hostile ids cost minutes).
_ID = re.compile(rf"({NAME_PATTERN.pattern})\s*(?:\(([^()]*)\))?")

MAX_ID_CHARS = 200
"""Longest TF id accepted: longer ones are refused before they are parsed (and before an error message quotes
them)."""


@dataclass(frozen=True)
class TFEntry:
    """One vocabulary entry: a registered TF name and its fixed magnitude (``None`` for TFs without one)."""

    name: str
    magnitude: float | None = None

    @property
    def tf(self) -> TF:
        return get_tf(self.name)

    @property
    def id(self) -> str:
        if self.magnitude is None:
            return self.name
        return f"{self.name}({_format_magnitude(self.magnitude, self.tf.signed)})"

    @classmethod
    def parse(cls, text: str) -> TFEntry:
        """Parse an id like ``rotate(+5)``, ``zoom(1.1)`` or ``hflip``; the TF must be registered."""
        if not isinstance(text, str):
            raise TypeError(f"TF id must be a string, got {type(text).__name__}")
        if len(text) > MAX_ID_CHARS:
            raise ValueError(f"TF id of {len(text)} characters, more than {MAX_ID_CHARS}: {text[:40]!r}...")
        m = _ID.fullmatch(text.strip())
        if m is None:
            raise ValueError(f"malformed TF id {text!r}; expected 'name' or 'name(magnitude)', e.g. 'rotate(+5)'")
        name, mag = m.group(1), m.group(2)
        mag = None if mag is None else mag.strip()
        if mag is None or mag == "":
            return _checked_entry(name, None, text)
        try:
            value = float(mag)
        except ValueError:
            raise ValueError(f"malformed magnitude in TF id {text!r}") from None
        return _checked_entry(name, value, text)

    def __str__(self) -> str:
        return self.id


EntryLike = Union[TFEntry, str, tuple]


def _checked_entry(name: str, magnitude: float | None, text: str | None = None) -> TFEntry:
    """An entry whose TF is registered and whose magnitude fits it (present, finite and in the TF's valid range, or
    absent)."""
    tf = get_tf(name)
    shown = text if text is not None else f"{name}({magnitude})"
    if magnitude is None:
        if tf.takes_magnitude:
            raise ValueError(f"TF {name!r} needs a magnitude, e.g. '{name}(0.5)'")
        return TFEntry(name, None)
    if not tf.takes_magnitude:
        raise ValueError(f"TF {name!r} takes no magnitude, got {shown!r}")
    value = float(magnitude)
    if not math.isfinite(value):
        raise ValueError(f"magnitude must be finite in TF id {shown!r}")
    if tf.valid is not None and not tf.valid[0] <= value <= tf.valid[1]:
        lo, hi = tf.valid
        raise ValueError(f"TF {name!r} takes magnitudes in [{lo:g}, {hi:g}], got {shown!r}")
    return TFEntry(name, value)


def _format_magnitude(value: float, signed: bool) -> str:
    """Shortest text that parses back to exactly ``value``: ``5``, ``0.1``, ``0.3333333333333333``."""
    text = f"{value:g}"
    if float(text) != value:
        text = repr(float(value))
    if signed and not text.startswith("-"):
        text = "+" + text
    return text


def _entry(x: EntryLike) -> TFEntry:
    if isinstance(x, TFEntry):
        return _checked_entry(x.name, x.magnitude)
    if isinstance(x, str):
        return TFEntry.parse(x)
    if isinstance(x, tuple) and 1 <= len(x) <= 2:
        mag = None if len(x) == 1 or x[1] is None else float(x[1])
        return _checked_entry(x[0], mag)
    raise TypeError(f"cannot make a TF entry from {x!r}")


class TFSet(Sequence[TFEntry]):
    """An ordered vocabulary of K TF entries; policies emit indices into it.

    Parameters
    ----------
    entries:
        ``TFEntry`` objects, ids such as ``"rotate(+5)"``, or ``(name, magnitude)`` tuples.
    name:
        Optional label shown in ``repr`` and stored in policy files.
    """

    def __init__(self, entries: Iterable[EntryLike], name: str | None = None) -> None:
        self._entries = tuple(_entry(e) for e in entries)
        if not self._entries:
            raise ValueError("a TF set needs at least one entry")
        ids = [e.id for e in self._entries]
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
        if dupes:
            more = f" and {len(dupes) - 5} more" if len(dupes) > 5 else ""
            raise ValueError(f"duplicate entries in TF set: {dupes[:5]}{more}")
        self.name = name
        self._index = {i: k for k, i in enumerate(ids)}

    @overload
    def __getitem__(self, i: int) -> TFEntry: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[TFEntry]: ...
    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self._entries[i]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[TFEntry]:
        return iter(self._entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TFSet) and self._entries == other._entries

    def __hash__(self) -> int:
        return hash(self._entries)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self._entries]

    def index_of(self, tf_id: str | TFEntry) -> int:
        """Index of an entry given by id or object."""
        key = tf_id.id if isinstance(tf_id, TFEntry) else TFEntry.parse(tf_id).id
        try:
            return self._index[key]
        except KeyError:
            raise UnknownNameError(f"{key!r} is not in this TF set ({len(self)} entries)", key) from None

    def __repr__(self) -> str:
        shown = ", ".join(self.ids[:6]) + (", ..." if len(self) > 6 else "")
        label = f"{self.name!r}, " if self.name else ""
        return f"TFSet({label}K={len(self)}: [{shown}])"


def _pm(name: str, mags: Iterable[float]) -> list[TFEntry]:
    return [TFEntry(name, s * m) for m in mags for s in (1.0, -1.0)]


def _each(name: str, mags: Iterable[float]) -> list[TFEntry]:
    return [TFEntry(name, float(m)) for m in mags]


def mnist_tfs() -> TFSet:
    """TANDA's 25 MNIST TFs (rotate, zoom, shear, swirl, elastic, erosion, dilation)."""
    return TFSet(
        _pm("rotate", [2.5, 5, 10])
        + _each("zoom", [0.9, 1.1])
        + _pm("shear_x", [0.1, 0.2, 0.4])
        + _pm("swirl", [0.1, 0.2, 0.4])
        + _each("elastic", [1.0, 1.25, 1.5])
        + [TFEntry("erosion"), TFEntry("dilation")],
        name="mnist",
    )


def cifar10_tfs() -> TFSet:
    """TANDA's 33 CIFAR-10 TFs (small geometric and colour changes plus a horizontal flip)."""
    return TFSet(
        _pm("rotate", [2.5, 5])
        + _each("zoom", [0.9, 1.1, 0.75, 1.25])
        + _pm("shear_x", [0.1, 0.25])
        + _pm("swirl", [0.1, 0.25])
        + _pm("hue", [0.1, 0.25])
        + _each("contrast", [0.75, 1.25, 0.5, 1.5])
        + _each("brightness", [0.75, 1.25, 0.5, 1.5])
        + _each("color", [0.75, 1.25, 0.5, 1.5])
        + [TFEntry("hflip")],
        name="cifar10",
    )


def default_tfs() -> TFSet:
    """A wide vocabulary for natural images: TrivialAugment-like ops, each at a few magnitudes."""
    return TFSet(
        _pm("rotate", [5, 15, 30])
        + _pm("shear_x", [0.1, 0.3])
        + _pm("shear_y", [0.1, 0.3])
        + _pm("translate_x", [0.1, 0.25])
        + _pm("translate_y", [0.1, 0.25])
        + _each("zoom", [0.8, 0.9, 1.1, 1.25])
        + [TFEntry("hflip")]
        + _each("brightness", [0.5, 0.75, 1.25, 1.5])
        + _each("contrast", [0.5, 0.75, 1.25, 1.5])
        + _each("color", [0.25, 0.6, 1.4, 1.8])
        + _pm("hue", [0.05, 0.15])
        + _each("sharpness", [0.25, 1.75])
        + _each("gamma", [0.7, 1.4])
        + _each("posterize", [4, 6])
        + _each("solarize", [0.5, 0.75])
        + [TFEntry("equalize"), TFEntry("autocontrast")]
        + _each("blur", [1.0])
        + _each("noise", [0.04])
        + _each("cutout", [0.25]),
        name="default",
    )


NAMED_SETS = {"mnist": mnist_tfs, "cifar10": cifar10_tfs, "default": default_tfs}
_NAMED_CACHE: dict[tuple[str, object], TFSet] = {}


def get_tfset(spec: str | TFSet | Iterable[EntryLike]) -> TFSet:
    """A TF set from a name (``"mnist"``, ``"cifar10"``, ``"default"``), a ``TFSet`` or a list of ids."""
    if isinstance(spec, TFSet):
        return spec
    if isinstance(spec, str):
        # Built once per name: parsing the ids costs more than applying a short sequence to a small image, and
        # entries hold names, not TF objects, so a TF re-registered later is still looked up afresh.
        try:
            factory = NAMED_SETS[spec]
        except KeyError:
            raise UnknownNameError(f"unknown TF set {spec!r}; named sets are {sorted(NAMED_SETS)}", spec) from None
        # Keyed by the factory too: a set registered anew under the same name is built afresh.
        cached = _NAMED_CACHE.get((spec, factory))
        if cached is None:
            cached = _NAMED_CACHE[(spec, factory)] = factory()
        return cached
    if not isinstance(spec, Iterable):
        raise TypeError(f"expected a TF set name, a TFSet or a list of TF ids, got {type(spec).__name__}")
    return TFSet(spec)

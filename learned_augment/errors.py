"""Errors shared across the package (``ArtifactError``, for files, lives with the file format in :mod:`.io`)."""

from __future__ import annotations


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered: a TF, a named TF set, a shipped pretrained artifact.

    A ``KeyError``, as these lookups always raised, and a ``ValueError``, as any other bad argument; unlike a plain
    ``KeyError`` it prints its message as written, without quotes. ``name`` is the name that was looked up.
    """

    def __init__(self, message: str, name: object = None) -> None:
        super().__init__(message)
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

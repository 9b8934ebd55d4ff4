"""``python -m learned_augment``: the ``learned-augment`` command line."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m caalib.bench``: ``caa bench`` without the rest of the command line."""

from .cli import main

raise SystemExit(main())

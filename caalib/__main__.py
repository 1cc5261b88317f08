"""``python -m caalib`` is the ``caa`` command."""

from caalib.cli import main

raise SystemExit(main())

"""``python -m dlviz list | run DEMO | bench``: the demos without a browser."""

from .cli import main

raise SystemExit(main())

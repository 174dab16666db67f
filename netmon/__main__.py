"""Entry point for `python -m netmon`."""

from netmon.cli import main

raise SystemExit(main())

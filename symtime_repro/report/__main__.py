"""``python -m symtime_repro.report``: the command line lives in cli.py, so that tests and other code
call ``report.main([...])`` without importing a ``__main__`` module."""

import sys

from .cli import main

sys.exit(main())

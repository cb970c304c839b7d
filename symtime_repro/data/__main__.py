"""``python -m symtime_repro.data``: list, download, import and verify datasets (see cli.py)."""

import sys

from .cli import main

sys.exit(main())

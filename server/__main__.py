"""`python -m server`: run the signwatch command line (serves by default)."""

import sys

from .cli import main

sys.exit(main())

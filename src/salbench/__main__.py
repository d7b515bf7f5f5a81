"""``python -m salbench`` = the ``salbench`` command."""

import sys

from .cli import main

sys.exit(main())

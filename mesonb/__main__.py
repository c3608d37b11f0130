"""``python -m mesonb``: the same as the ``mesonb`` command."""

import sys

from mesonb.cli import main

sys.exit(main())

"""``python -m normlab``: the same command line as ``normlab``."""

import sys

from normlab.cli.main import main

sys.exit(main())

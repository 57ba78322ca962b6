"""``python -m arc_kit.cli``: the same as the ``arc-kit`` command."""

import sys

from arc_kit.cli.main import main

sys.exit(main())

"""``python -m mlfactory.hub.cli``: the ``mlfactory`` command."""

import sys

from . import main

sys.exit(main())

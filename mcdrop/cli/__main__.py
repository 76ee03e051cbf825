"""``python -m mcdrop.cli``: the ``mcdrop`` command."""

import sys

from . import main

sys.exit(main())

"""``python -m sqlxmq_py.cli``: the ``sqlxmq`` command."""

import sys

from . import main

sys.exit(main())

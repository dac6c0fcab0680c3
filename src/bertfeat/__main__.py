"""``python -m bertfeat``: the same as the ``bertfeat`` command."""

import sys

from .cli import main

sys.exit(main())

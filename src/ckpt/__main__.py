"""`python -m ckpt`: the same command as the `ckpt` console script."""

import sys

from ckpt.cli import main

sys.exit(main())

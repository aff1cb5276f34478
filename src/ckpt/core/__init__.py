"""`ckpt.core`, as it was before the src/ layout: the API, and the old
modules that files and cluster workers still name (`ckpt.moved`).

`import ckpt.core as ckpt` gives the same API as `import ckpt`.
"""

from __future__ import annotations

import importlib
import sys

from ckpt import *  # noqa: F403  (the public API, as `ckpt.__all__` lists it)
from ckpt import __all__, __version__  # noqa: F401
from ckpt.moved import MOVED

for _old, _new in MOVED.items():
    sys.modules[_old] = importlib.import_module(_new)

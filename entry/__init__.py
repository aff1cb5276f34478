"""ckpt: checkpoint Python models that plain pickle refuses.

The package's top level is the library, as `import torch` or `import joblib`
users expect: `ckpt.save`, `ckpt.load`, `ckpt.scan`, `ckpt.verify`,
`ckpt.inspect`, `ckpt.diff` and every error class. It is exactly what
`ckpt.core` exports (one list, `ckpt.core.__all__`), so the two never drift.

    >>> import ckpt
    >>> ckpt.save(model, "model.ckpt")
    >>> model = ckpt.load("model.ckpt")
"""

from ckpt.core import *  # noqa: F403  (the public API, as `ckpt.core.__all__` lists it)
from ckpt.core import __all__, __version__  # noqa: F401

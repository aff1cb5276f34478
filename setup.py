"""The compiled parts: the stream analysis's fast path (core/_stream.c) and
save's replay of the stream it wrote (core/_reach.c).

Optional: when they cannot be built (no compiler), `pip install .` still
succeeds and ckpt.core.stream and ckpt.core.reach run their pure-Python
twins, with the same results.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("ckpt.core._stream", ["core/_stream.c"], optional=True),
    Extension("ckpt.core._reach", ["core/_reach.c"], optional=True),
])

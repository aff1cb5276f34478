"""The one compiled part: the stream analysis's fast path (core/_stream.c).

Optional: when it cannot be built (no compiler), `pip install .` still
succeeds and ckpt.core.stream runs its pure-Python loop, with the same results.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ckpt.core._stream", ["core/_stream.c"], optional=True)])

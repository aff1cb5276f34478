"""The compiled parts: the stream analysis's fast path
(src/ckpt/trust/_analysis.c) and save's replay of the stream it wrote
(src/ckpt/scanning/_replay.c).

Optional: when they cannot be built (no compiler), `pip install .` still
succeeds and ckpt.trust.analysis and ckpt.scanning.replay run their
pure-Python twins, with the same results (`ckpt.objects.compiled`).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("ckpt.trust._analysis", ["src/ckpt/trust/_analysis.c"], optional=True),
    Extension("ckpt.scanning._replay", ["src/ckpt/scanning/_replay.c"], optional=True),
])

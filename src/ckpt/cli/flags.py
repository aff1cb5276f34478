"""Errors from the library, in the command line's words.

The library's messages name the keyword argument that fixes them
(`overwrite=True`, `trust=['mypkg']`), which is what its callers can change;
a command-line user changes flags. Each error lists the arguments it names,
and this respells each one as the flag that passes it.
"""

from __future__ import annotations

from ckpt import Argument, CkptError

FLAGS = {
    "overwrite": "--force",
    "strip": "--strip",
    "trust": "--trust",
    "strict": "--strict",
    "mmap": "--mmap",
}
"""Keyword argument of the library -> the flag of ckpt's commands that passes it."""


def flag(argument: Argument) -> str:
    """`overwrite=True` -> `--force`; `trust=['a', 'b']` -> `--trust a --trust b`."""
    option = FLAGS[argument.name]
    if isinstance(argument.value, bool):
        return option
    return " ".join(f"{option} {value}" for value in argument.value)


def message(exc: CkptError) -> str:
    """The error's one line, with flags where it names keyword arguments,
    and a pointer to --traceback when it wraps the user's own exception."""
    text = str(exc)
    for argument in exc.arguments:
        text = text.replace(str(argument), flag(argument))
    if getattr(exc, "cause", None) is not None:
        text += " (run with --traceback for the full traceback)"
    return text

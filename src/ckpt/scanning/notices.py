"""What pickle saves by name, not by value, and what that leaves behind.

A `logging.Logger` pickles as `logging.getLogger(name)`: plain pickle
handles it (so it is no finding), but the loaded model gets the loading
process's logger of that name, without the handlers attached to it here.
`load --verify` cannot see the difference, so scan and save say it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any


def logger_types() -> tuple[type, ...]:
    """The logger classes in use (exact types: a pickler's dispatch table matches those)."""
    return tuple({logging.Logger, logging.RootLogger, logging.getLoggerClass()})


def logger_notices(loggers: Iterable[Any]) -> tuple[str, ...]:
    """One line per logger that has handlers, which the checkpoint will not carry."""
    lines = []
    for logger in loggers:
        handlers = list(logger.handlers)
        if handlers:
            kinds = ", ".join(sorted({type(h).__name__ for h in handlers}))
            one = len(handlers) == 1
            count, verb, copula = ("1 handler", "belongs", "is") if one else (f"{len(handlers)} handlers", "belong", "are")
            lines.append(f"logger {logger.name!r} is restored by name (the loading process's logger of that name): "
                         f"its {count} ({kinds}) {verb} to this process and {copula} not saved")
    return tuple(lines)

"""A model that logs: it holds a logging.Logger with handlers attached, and
keeps its handlers to close them later.

A Logger itself pickles by name (`logging.getLogger(name)` on load), so it is
not a finding: the loaded model gets the loading process's logger, with the
handlers configured there (scan and save print a note saying so). The handlers the model keeps are findings: each is
rewrapped (file handlers reopen lazily in append mode, stderr ones rebind).
"""

from __future__ import annotations

import logging
import os
import tempfile


class LoggedModel:
    def __init__(self) -> None:
        self.coefficients = [0.5, -1.25, 3.0]
        self.log = logging.getLogger("sample_models.logged")
        self.handlers = [
            logging.FileHandler(os.path.join(tempfile.gettempdir(), "ckpt-sample-logged.log")),
            logging.StreamHandler(),
        ]
        for handler in self.handlers:
            self.log.addHandler(handler)

    def predict(self, x: float) -> float:
        result = sum(c * x**i for i, c in enumerate(self.coefficients))
        self.log.debug("predict(%s) = %s", x, result)
        return result


def build() -> LoggedModel:
    return LoggedModel()

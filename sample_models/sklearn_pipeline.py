"""A scikit-learn Pipeline whose custom first step audits every call: it
holds an RLock and a logging.FileHandler, so the fitted pipeline cannot be
pickled. Trained on generated data in well under a second.

    ckpt scan sample_models.sklearn_pipeline:build
    ckpt save sample_models.sklearn_pipeline:build -o pipe.ckpt
    ckpt load pipe.ckpt --trust logging:FileHandler --trust sample_models.sklearn_pipeline:AuditedClipper \
        --trust sklearn --verify --against sample_models.sklearn_pipeline:build

(`ckpt save` prints that command: the file handler writes where the checkpoint
says, so it needs your trust too.)
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

LOG_FILE = os.path.join(tempfile.gettempdir(), "ckpt-sample-audit.log")


class AuditedClipper(BaseEstimator, TransformerMixin):
    """Clips features to the range seen in training, logging each call."""

    def __init__(self, log_file: str = LOG_FILE) -> None:
        self.log_file = log_file

    def fit(self, X: Any, y: Any = None) -> AuditedClipper:
        self.low_, self.high_ = X.min(axis=0), X.max(axis=0)
        self.lock_ = threading.RLock()
        self.handler_ = logging.FileHandler(self.log_file)
        self.handler_.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        self.calls_ = 0
        return self

    def transform(self, X: Any) -> Any:
        with self.lock_:
            self.calls_ += 1
        self.handler_.emit(logging.makeLogRecord({"msg": f"transform {len(X)} rows"}))
        return np.clip(X, self.low_, self.high_)


def data() -> tuple[Any, Any]:
    return make_classification(n_samples=300, n_features=8, random_state=0)


def build() -> Pipeline:
    X, y = data()
    pipeline = Pipeline([
        ("audit", AuditedClipper()),
        ("scale", StandardScaler()),
        ("classify", LogisticRegression(max_iter=200)),
    ])
    return pipeline.fit(X, y)

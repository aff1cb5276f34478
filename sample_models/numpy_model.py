"""A model with numpy weights and a lock around its running statistics.

    ckpt scan sample_models.numpy_model:build          # model.lock
    ckpt save sample_models.numpy_model:build -o w.ckpt  # weights written out of band, 64-byte aligned
    ckpt load w.ckpt --trust sample_models --mmap      # weights mapped, not read
"""

from __future__ import annotations

import threading

import numpy as np


class LinearModel:
    def __init__(self, features: int = 256, outputs: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.standard_normal((features, outputs)).astype(np.float32)
        self.bias = np.zeros(outputs, dtype=np.float32)
        self.seen = 0
        self.lock = threading.Lock()

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            self.seen += len(x)
        return x @ self.weights + self.bias


def build() -> LinearModel:
    return LinearModel()

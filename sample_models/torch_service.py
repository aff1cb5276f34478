"""A torch module inside a serving class: a lock around the model, a thread
pool for preprocessing and a queue of pending requests (tensors).

    ckpt scan sample_models.torch_service:build
    ckpt save sample_models.torch_service:build -o torch.ckpt
    ckpt load torch.ckpt --trust sample_models --verify --against sample_models.torch_service:build

torch's own layers load without --trust (ckpt allows torch.nn.modules
classes); the serving classes are yours, so they need --trust sample_models
(`ckpt save` prints what a file needs).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, features: int = 16, hidden: int = 64, classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))
        self.register_buffer("temperature", torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) / self.temperature


class TorchService:
    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = Classifier().eval()
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="preprocess")
        self.pending: queue.Queue[torch.Tensor] = queue.Queue()
        for i in range(3):
            self.pending.put(torch.full((16,), float(i)))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock, torch.no_grad():
            return self.model(x)


def build() -> TorchService:
    return TorchService()

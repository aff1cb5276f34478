"""A small LightningModule for the corpus (tests/realworld/corpus.py): a
regressor that keeps `torch.sum` as a value (its loss reduction) and its
hyperparameters, as Lightning code does.

Imported only by the Lightning case: importing Lightning takes seconds.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


class Regressor(pl.LightningModule):
    def __init__(self, features: int = 4, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(features, 1)
        self.reduce = torch.sum  # a builtin function kept as a value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.reduce((self(x) - y) ** 2) / len(x)
        self.log("train_loss", loss)
        return loss  # type: ignore[no-any-return]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

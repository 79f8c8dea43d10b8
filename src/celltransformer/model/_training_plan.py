"""Lightning training plan: the published optimisation, and validation NLL and correlation."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy

from celltransformer.nn import CellTransformerModule


def inverse_sqrt_with_plateau(warmup_steps: int, plateau_steps: int, timescale: int) -> Callable[[int], float]:
    """Learning-rate factor of an inverse-square-root schedule with warm-up and plateau.

    The factor rises linearly to 1 over ``warmup_steps``, stays at 1 for ``plateau_steps``, then
    decays as ``sqrt(timescale / (timescale + s))`` where ``s`` counts the steps after the plateau
    (the inverse-square-root schedule of ``transformers`` with a plateau inserted).
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        decay_step = step - warmup_steps - plateau_steps
        if decay_step < 0:
            return 1.0
        return math.sqrt(timescale / (timescale + decay_step))

    return factor


class CellTransformerTrainingPlan(pl.LightningModule):
    """Trains a :class:`~celltransformer.nn.CellTransformerModule` on packed batches.

    Adam with an inverse-square-root schedule stepped every optimizer step. Logs
    ``nll_train``, ``pearson_train``, ``nll_validation`` and ``pearson_validation`` (mean
    per-cell Pearson correlation between predicted mean and observed counts) per epoch; they land
    in ``model.history``.

    Parameters
    ----------
    module
        The network.
    lr
        Peak learning rate.
    weight_decay
        Adam weight decay.
    warmup_steps, plateau_steps, timescale
        Schedule, see :func:`inverse_sqrt_with_plateau`.
    """

    def __init__(
        self,
        module: CellTransformerModule,
        lr: float = 1e-3,
        weight_decay: float = 1e-9,
        warmup_steps: int = 500,
        plateau_steps: int = 50,
        timescale: int = 5000,
    ):
        super().__init__()
        self.module = module
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.plateau_steps = plateau_steps
        self.timescale = timescale

    def _log_metrics(self, loss_output, mode: str) -> None:
        sync_dist = isinstance(self.trainer.strategy, DDPStrategy)
        metrics = {f"nll_{mode}": loss_output.loss, f"pearson_{mode}": loss_output.extra_metrics["pearson"]}
        self.log_dict(
            metrics,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=loss_output.n_obs_minibatch,
            sync_dist=sync_dist,
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, _, loss_output = self.module(batch)
        self._log_metrics(loss_output, "train")
        return loss_output.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, _, loss_output = self.module(batch)
        self._log_metrics(loss_output, "validation")

    def configure_optimizers(self):
        trainable = [p for p in self.module.parameters() if p.requires_grad]
        row_frozen = {id(p) for p in getattr(self.module, "row_frozen_parameters", ())}
        groups = [
            {"params": [p for p in trainable if id(p) not in row_frozen]},
            {"params": [p for p in trainable if id(p) in row_frozen], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.Adam(
            [group for group in groups if group["params"]], lr=self.lr, weight_decay=self.weight_decay
        )
        schedule = inverse_sqrt_with_plateau(self.warmup_steps, self.plateau_steps, self.timescale)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

"""Lightning training plan: the published optimisation, and validation NLL and correlation."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.strategies import DDPStrategy
from scvi import settings

from celltransformer._constants import PACKED_KEYS
from celltransformer.data import DeviceExpression, ExpressionMatrix
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


def check_optimisation_arguments(
    lr: float, weight_decay: float, warmup_steps: int, plateau_steps: int, timescale: int
) -> None:
    """Refuse optimisation settings that would fail or silently not train."""
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr}; the published value is 1e-3.")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be at least 0, got {weight_decay}.")
    if warmup_steps < 0 or plateau_steps < 0:
        raise ValueError(
            f"warmup_steps and plateau_steps must be at least 0, got {warmup_steps} and {plateau_steps}."
        )
    if timescale < 1:
        raise ValueError(f"timescale must be at least 1 step, got {timescale}.")


def batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """Seed of torch's generator for one training batch of one process."""
    return int(np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(1)[0])


def non_finite_loss_error(loss: float, epoch: int, step: int) -> FloatingPointError:
    """The error raised when the training loss is NaN or infinite, with its likely causes."""
    return FloatingPointError(
        f"The training loss became {loss} at epoch {epoch}, optimizer step {step}; training stopped "
        "before it could turn the weights and embeddings into NaN. Likely causes: (1) the matrix "
        "registered as counts holds normalised, scaled or log data: register the raw counts with "
        "`layer=...`, or set `expression_is_log1p=True` for log1p(counts); (2) the learning rate is "
        "too high: lower it with `plan_kwargs={'lr': ...}` (default 1e-3) or lengthen "
        "`warmup_steps`; (3) extreme counts, such as cells with millions of counts: inspect "
        "`adata.X.max()` and filter outlier cells; (4) float16 overflow: train with "
        "`precision='32-true'` or `'bf16-mixed'`. Start a new model after the fix."
    )


class CellTransformerTrainingPlan(pl.LightningModule):
    """Trains a :class:`~celltransformer.nn.CellTransformerModule` on packed batches.

    Adam with an inverse-square-root schedule stepped every optimizer step. Logs
    ``nll_train``, ``pearson_train``, ``nll_validation`` and ``pearson_validation`` (mean
    per-cell Pearson correlation between predicted mean and observed counts) per epoch; they land
    in ``model.history``.

    A NaN or infinite training loss stops training with a :class:`FloatingPointError` that names
    the likely causes. When :attr:`scvi.settings.seed` is set, torch's generator (which draws the
    dropout masks) is reseeded from ``(seed, epoch, batch, rank)`` before every training batch,
    as the batch sampler derives its batches, so a training resumed from a checkpoint repeats
    the uninterrupted training exactly.

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
    device_counts
        The count matrix, when batches come without counts: it is copied to the training device
        once and every batch's counts are gathered there (see ``gather_on_device`` of
        :meth:`~celltransformer.CellTransformer.train`).
    """

    def __init__(
        self,
        module: CellTransformerModule,
        lr: float = 1e-3,
        weight_decay: float = 1e-9,
        warmup_steps: int = 500,
        plateau_steps: int = 50,
        timescale: int = 5000,
        device_counts: ExpressionMatrix | None = None,
    ):
        super().__init__()
        check_optimisation_arguments(lr, weight_decay, warmup_steps, plateau_steps, timescale)
        self.device_counts = device_counts
        self._resident_counts: DeviceExpression | None = None
        self.module = module
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.plateau_steps = plateau_steps
        self.timescale = timescale
        self.seed = settings.seed

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

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        """Gather the batch's counts on the device from the resident copy, when there is one."""
        if self.device_counts is None:
            return batch
        if self._resident_counts is None:
            self._resident_counts = DeviceExpression(self.device_counts, self.device)
        batch[PACKED_KEYS.NEIGHBOR_COUNTS] = self._resident_counts.gather(batch[PACKED_KEYS.NEIGHBOR_INDICES])
        batch[PACKED_KEYS.REFERENCE_COUNTS] = self._resident_counts.gather(batch[PACKED_KEYS.REFERENCE_INDICES])
        return batch

    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.seed is not None:
            torch.manual_seed(batch_seed(self.seed, self.current_epoch, batch_idx, self.global_rank))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, _, loss_output = self.module(batch)
        # One host-device sync per step: cheap next to a step, and it stops training at the first bad loss.
        if not torch.isfinite(loss_output.loss):
            raise non_finite_loss_error(loss_output.loss.item(), self.current_epoch, self.global_step)
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

"""Embedding on several devices or machines through Lightning's ``Trainer.predict``.

Every process embeds its own share of the cells (the batch sampler splits them as in training)
and writes its rows straight into one shared ``.npy`` file, so no process gathers the embeddings
of the others.
"""

from __future__ import annotations

import os

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from scvi.data import AnnDataManager

from celltransformer._constants import PACKED_KEYS
from celltransformer.data._loading import neighborhood_dataset, neighborhood_loader
from celltransformer.nn import CellTransformerModule


class _EmbeddingPredictor(pl.LightningModule):
    """Runs the module's inference on a packed batch and returns its cells and embeddings."""

    def __init__(self, module: CellTransformerModule, representation: str):
        super().__init__()
        self.module = module
        self.representation = representation

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        outputs = self.module.inference(**self.module._get_inference_input(batch))
        return {"cells": batch[PACKED_KEYS.REFERENCE_INDICES], "embedding": outputs[self.representation]}


class _CellBatches(pl.LightningDataModule):
    """Batches of all cells, split between processes once Lightning has started them."""

    def __init__(self, adata_manager: AnnDataManager, batch_size: int, max_neighbors: int | None):
        super().__init__()
        self.adata_manager = adata_manager
        self.batch_size = batch_size
        self.max_neighbors = max_neighbors

    def predict_dataloader(self):
        dataset = neighborhood_dataset(self.adata_manager, self.max_neighbors, random_cap=False)
        cells = np.arange(self.adata_manager.adata.n_obs)
        return neighborhood_loader(dataset, cells, self.batch_size, distributed=True)


class _NpyWriter(BasePredictionWriter):
    """Writes every batch's embeddings into rows of a ``.npy`` file shared by all processes."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int]):
        super().__init__(write_interval="batch")
        self.path = path
        self.shape = shape
        self.rows: np.memmap | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=self.shape).flush()
        trainer.strategy.barrier()
        self.rows = np.load(self.path, mmap_mode="r+")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        self.rows[prediction["cells"].cpu().numpy()] = prediction["embedding"].float().cpu().numpy()

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows.flush()
        trainer.strategy.barrier()


def embed_on_devices(
    module: CellTransformerModule,
    adata_manager: AnnDataManager,
    out: str | os.PathLike,
    batch_size: int,
    max_neighbors: int | None,
    representation: str,
    **trainer_kwargs,
) -> None:
    """Embed every cell of the registered AnnData into ``out`` with ``Trainer.predict``."""
    shape = (adata_manager.adata.n_obs, module.cls_token.shape[1])
    trainer = pl.Trainer(
        callbacks=[_NpyWriter(out, shape)],
        logger=False,
        use_distributed_sampler=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    trainer.predict(
        _EmbeddingPredictor(module, representation),
        datamodule=_CellBatches(adata_manager, batch_size, max_neighbors),
        return_predictions=False,
    )

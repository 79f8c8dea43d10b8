"""Data loaders of packed neighbourhood batches, and the train/validation split."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from lightning import LightningDataModule
from scvi import settings
from scvi.data import AnnDataManager
from torch.utils.data import DataLoader, Sampler

from celltransformer._constants import PACKED_KEYS, REGISTRY_KEYS

from ._expression import ExpressionMatrix
from ._graph import NeighborhoodGraph
from ._masks import attention_masks
from ._packing import BatchKey, NeighborhoodDataset


def registered_expression(adata_manager: AnnDataManager) -> ExpressionMatrix:
    """The count matrix registered in ``adata_manager``."""
    return ExpressionMatrix(
        adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY),
        is_log1p=adata_manager.registry["setup_args"]["expression_is_log1p"],
    )


def neighborhood_dataset(
    adata_manager: AnnDataManager, max_neighbors: int | None, random_cap: bool, gather_counts: bool = True
) -> NeighborhoodDataset:
    """Dataset of packed neighbourhood batches over the AnnData registered in ``adata_manager``."""
    expression = registered_expression(adata_manager)
    cell_types = np.asarray(adata_manager.get_from_registry(REGISTRY_KEYS.CELL_TYPE_KEY)).ravel()
    graph = NeighborhoodGraph.from_adjacency(adata_manager.get_from_registry(REGISTRY_KEYS.GRAPH_KEY))
    batches = batch_log_means = None
    if REGISTRY_KEYS.BATCH_KEY in adata_manager.data_registry:
        codes = pd.Categorical(np.asarray(adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel())
        batches = codes.codes.astype(np.int64)
        batch_log_means = expression.mean_log1p_by_group(batches, len(codes.categories))
    return NeighborhoodDataset(
        expression, cell_types, graph, max_neighbors, random_cap, batches, batch_log_means, gather_counts
    )


class ReferenceBatchSampler(Sampler):
    """Yields batches of reference cells, each with the seed of its random neighbourhood caps.

    An epoch's order and every batch's seed derive from ``(seed, epoch)`` only, so a training
    repeats exactly, also with worker processes, and one resumed from a checkpoint continues as
    if it had never stopped. With ``num_replicas > 1`` (distributed training) every process takes
    its own share of each epoch's order, padded to equal length as in
    :class:`~torch.utils.data.distributed.DistributedSampler`.

    Parameters
    ----------
    indices
        Reference cells to draw from.
    batch_size
        Reference cells per batch.
    shuffle
        Whether to shuffle the cells anew every epoch.
    drop_last
        Whether to drop the last, incomplete batch.
    seed
        Base seed; ``None`` draws fresh entropy (without touching global random states).
    num_replicas, rank
        Number of processes sharing the epoch, and this process's rank.
    """

    def __init__(
        self,
        indices: np.ndarray,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = np.random.SeedSequence().entropy if seed is None else int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch (Lightning calls this before every epoch)."""
        self.epoch = epoch

    @property
    def n_per_replica(self) -> int:
        """Reference cells each process sees per epoch."""
        return -(-len(self.indices) // self.num_replicas)

    def __len__(self) -> int:
        if self.drop_last:
            return self.n_per_replica // self.batch_size
        return -(-self.n_per_replica // self.batch_size)

    def __iter__(self):
        order = self.indices
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        padded = np.resize(order, self.n_per_replica * self.num_replicas)
        share = padded[self.rank :: self.num_replicas]
        for batch in range(len(self)):
            cells = share[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield BatchKey(cells, (self.seed, self.epoch, self.rank, batch))


def neighborhood_loader(
    dataset: NeighborhoodDataset,
    indices: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int | None = None,
    distributed: bool = False,
) -> DataLoader:
    """DataLoader of packed batches of the given reference cells (see :class:`ReferenceBatchSampler`).

    With ``distributed``, each process of the running :mod:`torch.distributed` group (as set up
    by Lightning's DDP) takes its own share of the cells.
    """
    num_replicas, rank = process_group() if distributed else (1, 0)
    return DataLoader(
        dataset,
        sampler=ReferenceBatchSampler(
            indices, batch_size, shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank
        ),
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def process_group() -> tuple[int, int]:
    """World size and rank of the running :mod:`torch.distributed` group; ``(1, 0)`` outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def split_sizes(n_obs: int, train_size: float | None, validation_size: float | None) -> tuple[int, int]:
    """Number of training and validation cells, following scvi-tools' ``DataSplitter``."""
    train_size = 0.9 if train_size is None else float(train_size)
    if not 0.0 < train_size <= 1.0:
        raise ValueError(f"train_size must be in (0, 1], got {train_size}.")
    validation_size = 1.0 - train_size if validation_size is None else float(validation_size)
    if validation_size < 0.0 or train_size + validation_size > 1.0 + 1e-9:
        raise ValueError(
            f"validation_size must be in [0, 1 - train_size], got {validation_size} with "
            f"train_size={train_size}."
        )
    n_train = int(np.ceil(train_size * n_obs))
    n_val = min(int(np.floor(validation_size * n_obs)), n_obs - n_train)
    return n_train, n_val


class NeighborhoodDataModule(LightningDataModule):
    """Splits the registered cells into training, validation and test reference cells.

    Neighbours are drawn from all cells: only the reference cells are split. Training batches
    subsample neighbourhoods over ``max_neighbors`` at random; validation batches pick the same
    neighbours every epoch. Under distributed training (Lightning DDP) every process takes its
    own share of each epoch's training and validation cells.

    Parameters
    ----------
    adata_manager
        Manager of the registered AnnData.
    train_size, validation_size
        Fractions of reference cells used for training and validation (default 0.9 and the rest).
    shuffle_set_split
        Whether to shuffle cells before splitting (seeded by :attr:`scvi.settings.seed`).
    batch_size
        Neighbourhoods per batch.
    max_neighbors
        Cap on the size of a neighbourhood.
    num_workers
        DataLoader worker processes.
    gather_on_device
        Leave the counts out of the batches: the training plan gathers them on the GPU from a
        resident copy (:class:`~celltransformer.data.DeviceExpression`).
    """

    def __init__(
        self,
        adata_manager: AnnDataManager,
        train_size: float | None = None,
        validation_size: float | None = None,
        shuffle_set_split: bool = True,
        batch_size: int = 32,
        max_neighbors: int | None = 250,
        num_workers: int = 0,
        gather_on_device: bool = False,
    ):
        super().__init__()
        self.adata_manager = adata_manager
        self.gather_on_device = gather_on_device
        self.batch_size = batch_size
        self.max_neighbors = max_neighbors
        self.num_workers = num_workers
        n_obs = adata_manager.adata.n_obs
        self.n_train, self.n_val = split_sizes(n_obs, train_size, validation_size)
        order = np.arange(n_obs)
        if shuffle_set_split:
            order = np.random.default_rng(settings.seed).permutation(n_obs)
        self.train_idx = order[: self.n_train]
        self.val_idx = order[self.n_train : self.n_train + self.n_val]
        self.test_idx = order[self.n_train + self.n_val :]
        self._dataset: NeighborhoodDataset | None = None

    def dataset(self, random_cap: bool) -> NeighborhoodDataset:
        """The registered data as packed batches, built once (with its batch means) for both loaders."""
        if self._dataset is None:
            self._dataset = neighborhood_dataset(
                self.adata_manager, self.max_neighbors, random_cap=True, gather_counts=not self.gather_on_device
            )
        dataset = copy.copy(self._dataset)
        dataset.random_cap = random_cap
        return dataset

    def train_dataloader(self) -> DataLoader:
        return neighborhood_loader(
            self.dataset(random_cap=True),
            self.train_idx,
            self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            seed=settings.seed,
            distributed=True,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.n_val == 0:
            return []
        return neighborhood_loader(
            self.dataset(random_cap=False), self.val_idx, self.batch_size, num_workers=self.num_workers, distributed=True
        )


def pack_batch(
    adata: AnnData,
    reference_indices: np.ndarray,
    max_neighbors: int | None = None,
    return_masks: bool = False,
) -> dict[str, torch.Tensor]:
    """Pack the neighbourhoods of some reference cells of a registered AnnData.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`celltransformer.CellTransformer.setup_anndata`.
    reference_indices
        Positions of the reference cells in ``adata``.
    max_neighbors
        Cap on a neighbourhood's size (the same neighbours are picked every time); ``None`` keeps
        all neighbours.
    return_masks
        Also return the three dense attention masks under ``encoder_mask``, ``pooling_mask``
        and ``decoder_mask`` (see :func:`attention_masks`).

    Returns
    -------
    The packed batch of :func:`pack_neighborhoods`, plus the masks on request.
    """
    from celltransformer.model import CellTransformer

    adata_manager = CellTransformer._get_most_recent_anndata_manager(adata, required=True)
    dataset = neighborhood_dataset(adata_manager, max_neighbors, random_cap=False)
    batch = dataset[BatchKey(np.asarray(reference_indices), None)]
    if return_masks:
        masks = attention_masks(batch[PACKED_KEYS.OFFSETS])
        batch.update(encoder_mask=masks.encoder, pooling_mask=masks.pooling, decoder_mask=masks.decoder)
    return batch

"""Packing a batch of neighbourhoods into one sequence of tokens."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from celltransformer._constants import PACKED_KEYS

from ._expression import ExpressionMatrix
from ._graph import NeighborhoodGraph


class BatchKey(NamedTuple):
    """A batch of reference cells and the seed of its random neighbourhood caps."""

    reference_indices: np.ndarray
    seed: tuple[int, ...] | None


class NeighborhoodDataset(torch.utils.data.Dataset):
    """Packs the neighbourhoods of a batch of reference cells.

    Indexing with a :class:`BatchKey` returns one packed batch (see :func:`pack_neighborhoods`);
    use it with :class:`ReferenceBatchSampler` and ``batch_size=None`` in a
    :class:`~torch.utils.data.DataLoader`. It holds only arrays, so it works in worker processes.

    Parameters
    ----------
    expression
        The registered count matrix.
    cell_types
        Integer cell-type code of every cell, shape ``(n_obs,)``.
    graph
        The spatial graph.
    max_neighbors
        Cap on the size of a neighbourhood; ``None`` keeps every neighbour.
    random_cap
        If ``True`` (training), neighbourhoods over the cap are subsampled at random, from the
        batch's seed. If ``False`` (inference), the same neighbours are picked every time.
    batches
        Integer batch code of every cell (e.g. the animal), or ``None`` without batches.
    batch_log_means
        Mean ``log1p(counts)`` of every gene in every batch, ``(n_batches, n_genes)``.
    gather_counts
        Whether batches carry the counts; ``False`` when they are gathered on the GPU instead.
    """

    def __init__(
        self,
        expression: ExpressionMatrix,
        cell_types: np.ndarray,
        graph: NeighborhoodGraph,
        max_neighbors: int | None = None,
        random_cap: bool = False,
        batches: np.ndarray | None = None,
        batch_log_means: np.ndarray | None = None,
        gather_counts: bool = True,
    ):
        self.expression = expression
        self.gather_counts = gather_counts
        self.cell_types = np.asarray(cell_types, dtype=np.int64)
        self.graph = graph
        self.max_neighbors = max_neighbors
        self.random_cap = random_cap
        self.batches = None if batches is None else torch.as_tensor(np.asarray(batches, dtype=np.int64))
        self.batch_log_means = None if batch_log_means is None else torch.as_tensor(batch_log_means)

    def __len__(self) -> int:
        return self.graph.n_obs

    def __getitem__(self, key: BatchKey) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(key.seed) if self.random_cap else None
        packed = pack_neighborhoods(
            self.expression if self.gather_counts else None,
            self.cell_types,
            self.graph,
            np.asarray(key.reference_indices, dtype=np.int64),
            max_neighbors=self.max_neighbors,
            rng=rng,
        )
        if self.batches is not None:
            packed[PACKED_KEYS.NEIGHBOR_BATCHES] = self.batches[packed[PACKED_KEYS.NEIGHBOR_INDICES]]
            packed[PACKED_KEYS.REFERENCE_BATCHES] = self.batches[packed[PACKED_KEYS.REFERENCE_INDICES]]
            packed[PACKED_KEYS.BATCH_LOG_MEANS] = self.batch_log_means
        return packed


def pack_neighborhoods(
    expression: ExpressionMatrix | None,
    cell_types: np.ndarray,
    graph: NeighborhoodGraph,
    reference_indices: np.ndarray,
    max_neighbors: int | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Pack the neighbourhoods of ``B`` reference cells into one batch.

    The ``N`` neighbour tokens of all neighbourhoods stand one after another (neighbourhood ``i``
    at ``offsets[i]:offsets[i + 1]``); the model appends one ``<cls>`` token per neighbourhood.
    Counts are read with a single gather from the count matrix; without ``expression`` they are
    left out, for a consumer that gathers them itself (on the GPU, see :class:`DeviceExpression`).

    Returns
    -------
    A dict with ``neighbor_counts`` ``(N, G)``, ``neighbor_types`` ``(N,)``,
    ``neighbor_indices`` ``(N,)``, ``reference_counts`` ``(B, G)``, ``reference_types``
    ``(B,)``, ``reference_indices`` ``(B,)`` and ``offsets`` ``(B + 1,)``. Counts are
    ``float32``, everything else ``int64``.
    """
    neighbor_indices, offsets = graph.neighborhoods(reference_indices, max_neighbors, rng)
    rows = np.concatenate([neighbor_indices, reference_indices])
    types = torch.from_numpy(cell_types[rows])
    n_neighbors = len(neighbor_indices)
    packed = {
        PACKED_KEYS.NEIGHBOR_TYPES: types[:n_neighbors],
        PACKED_KEYS.NEIGHBOR_INDICES: torch.from_numpy(neighbor_indices),
        PACKED_KEYS.REFERENCE_TYPES: types[n_neighbors:],
        PACKED_KEYS.REFERENCE_INDICES: torch.from_numpy(reference_indices),
        PACKED_KEYS.OFFSETS: torch.from_numpy(offsets),
    }
    if expression is not None:
        counts = torch.from_numpy(expression.gather(rows))
        packed[PACKED_KEYS.NEIGHBOR_COUNTS] = counts[:n_neighbors]
        packed[PACKED_KEYS.REFERENCE_COUNTS] = counts[n_neighbors:]
    return packed

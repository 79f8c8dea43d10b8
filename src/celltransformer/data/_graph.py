"""Neighbourhoods of reference cells, read from a squidpy spatial graph.

A reference cell's neighbourhood is the set of its graph neighbours, never the cell itself.
Sampling is vectorised over a whole batch with CSR index arithmetic: there is no Python loop over
cells.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse

_HASH_MULTIPLIER_1 = np.uint64(0xBF58476D1CE4E5B9)
_HASH_MULTIPLIER_2 = np.uint64(0x94D049BB133111EB)


def _stable_keys(reference: np.ndarray, neighbor: np.ndarray) -> np.ndarray:
    """Pseudo-random sort keys that depend only on the (reference, neighbour) pair.

    Capping a neighbourhood by the smallest keys then picks the same neighbours every time,
    whatever else is in the batch (a splitmix64 finaliser over the pair).
    """
    z = (reference.astype(np.uint64) << np.uint64(32)) ^ neighbor.astype(np.uint64)
    z = (z ^ (z >> np.uint64(30))) * _HASH_MULTIPLIER_1
    z = (z ^ (z >> np.uint64(27))) * _HASH_MULTIPLIER_2
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class NeighborhoodGraph:
    """Directed spatial graph in CSR form: row ``i`` lists the neighbours of cell ``i``.

    Parameters
    ----------
    indptr
        CSR row pointer, shape ``(n_obs + 1,)``.
    indices
        Neighbour indices, shape ``(n_edges,)``; no row contains its own index.
    """

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_adjacency(cls, adjacency: sparse.spmatrix | sparse.sparray) -> NeighborhoodGraph:
        """Build the graph from a sparse adjacency matrix such as ``obsp["spatial_connectivities"]``.

        Self-loops are dropped (a cell is never its own neighbour) and explicit zeros are not edges.
        A CSR matrix without self-loops or stored zeros is used without copying.
        """
        csr = sparse.csr_matrix(adjacency)
        has_self_loops = np.count_nonzero(csr.diagonal()) > 0
        has_stored_zeros = csr.nnz > 0 and not csr.data.all()
        if has_self_loops or has_stored_zeros:
            csr = csr.copy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sparse.SparseEfficiencyWarning)
                csr.setdiag(0)
            csr.eliminate_zeros()
        return cls(indptr=csr.indptr.astype(np.int64, copy=False), indices=csr.indices)

    @property
    def n_obs(self) -> int:
        """Number of cells."""
        return len(self.indptr) - 1

    @property
    def degrees(self) -> np.ndarray:
        """Number of neighbours of every cell."""
        return np.diff(self.indptr)

    def neighborhoods(
        self,
        reference_indices: np.ndarray,
        max_neighbors: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of a batch of reference cells, packed one neighbourhood after another.

        Parameters
        ----------
        reference_indices
            Cells whose neighbourhoods are wanted, shape ``(B,)``.
        max_neighbors
            Cap on a neighbourhood's size; larger neighbourhoods are subsampled without
            replacement. ``None`` keeps every neighbour.
        rng
            Source of randomness for the subsampling (training). Without one, the subsample is
            a fixed pseudo-random choice per (reference, neighbour) pair, so inference picks the
            same neighbours every time.

        Returns
        -------
        neighbor_indices
            Shape ``(N,)``: the neighbours of reference 0, then those of reference 1, and so on,
            each neighbourhood in graph order.
        offsets
            Shape ``(B + 1,)``: neighbourhood ``i`` is ``neighbor_indices[offsets[i]:offsets[i + 1]]``.
        """
        reference_indices = np.asarray(reference_indices, dtype=np.int64)
        starts = self.indptr[reference_indices]
        degrees = self.indptr[reference_indices + 1] - starts
        segment_starts = np.concatenate([[0], np.cumsum(degrees)])
        total = int(segment_starts[-1])
        segment = np.repeat(np.arange(len(reference_indices)), degrees)
        positions = np.arange(total) - segment_starts[segment] + starts[segment]
        neighbors = self.indices[positions].astype(np.int64, copy=False)

        if max_neighbors is None or total == 0 or degrees.max() <= max_neighbors:
            return neighbors, segment_starts

        if rng is None:
            keys = _stable_keys(reference_indices[segment], neighbors)
        else:
            keys = rng.random(total)
        order = np.lexsort((keys, segment))
        rank = np.empty(total, dtype=np.int64)
        rank[order] = np.arange(total) - segment_starts[segment[order]]
        keep = rank < max_neighbors
        kept_degrees = np.minimum(degrees, max_neighbors)
        return neighbors[keep], np.concatenate([[0], np.cumsum(kept_degrees)])

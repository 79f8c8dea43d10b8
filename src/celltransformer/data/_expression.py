"""Row access to the registered count matrix, in memory or on disk."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from scipy import sparse

VALUES_PER_BLOCK = 10_000_000


def is_on_disk(matrix) -> bool:
    """Whether ``matrix`` is read from disk on access (a backed AnnData's ``X``)."""
    return not (isinstance(matrix, np.ndarray) or sparse.issparse(matrix))


def row_blocks(matrix, values_per_block: int = VALUES_PER_BLOCK) -> Iterator[np.ndarray | sparse.spmatrix]:
    """Consecutive blocks of rows of ``matrix`` as in-memory arrays or sparse matrices."""
    rows_per_block = max(1, values_per_block // max(1, matrix.shape[1]))
    for start in range(0, matrix.shape[0], rows_per_block):
        yield matrix[start : start + rows_per_block]


class ExpressionMatrix:
    """Gathers rows of a count matrix as dense ``float32`` counts.

    Parameters
    ----------
    matrix
        Cells x genes: a dense array, a sparse matrix, or the on-disk ``X`` of a backed AnnData
        (a CSR dataset or an HDF5 array). A CSC matrix in memory is converted to CSR once, since
        gathering rows of CSC is slow (the user's matrix is not changed).
    is_log1p
        Whether ``matrix`` holds ``log1p(counts)``; the counts are then recovered as ``expm1``.

    Notes
    -----
    On disk, a batch's rows are read in one request, sorted and without repeats (as HDF5 reads
    them fastest), then put back in the batch's order: a batch costs one read of its distinct
    cells. Neighbours of a batch lie close together in the file when cells are stored in spatial
    order (for example sorted by section, then by position), which keeps those reads short.
    """

    def __init__(self, matrix, is_log1p: bool = False):
        if sparse.issparse(matrix):
            matrix = sparse.csr_matrix(matrix)
        elif not is_on_disk(matrix):
            matrix = np.asarray(matrix)
        self.matrix = matrix
        self.is_log1p = is_log1p

    @property
    def n_genes(self) -> int:
        """Number of genes (columns)."""
        return self.matrix.shape[1]

    def mean_log1p_by_group(self, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """Mean ``log1p(counts)`` of every gene within each group of cells, ``(n_groups, n_genes)``.

        Computed block by block of cells, so no second copy of the matrix is made.
        """
        sums = np.zeros((n_groups, self.n_genes))
        start = 0
        for block in row_blocks(self.matrix):
            chunk_groups = groups[start : start + block.shape[0]]
            start += block.shape[0]
            if sparse.issparse(block):
                block = sparse.csr_matrix(block, dtype=np.float64, copy=True)
                block.data = block.data if self.is_log1p else np.log1p(block.data)
            else:
                block = np.asarray(block, dtype=np.float64)
                block = block if self.is_log1p else np.log1p(block)
            indicator = sparse.csr_matrix(
                (np.ones(len(chunk_groups)), (chunk_groups, np.arange(len(chunk_groups)))),
                shape=(n_groups, len(chunk_groups)),
            )
            chunk_sums = indicator @ block
            sums += chunk_sums.toarray() if sparse.issparse(chunk_sums) else chunk_sums
        sizes = np.bincount(groups, minlength=n_groups)[:, None]
        return (sums / np.maximum(sizes, 1)).astype(np.float32)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Counts of the given rows, shape ``(len(rows), n_genes)``, as ``float32``."""
        if is_on_disk(self.matrix):
            distinct, positions = np.unique(rows, return_inverse=True)
            block = self.matrix[distinct]
            block = (block.toarray() if sparse.issparse(block) else np.asarray(block))[positions]
        else:
            block = self.matrix[rows]
        block = block.toarray() if sparse.issparse(block) else block
        block = block.astype(np.float32, copy=False)
        return np.expm1(block) if self.is_log1p else block


class DeviceExpression:
    """The count matrix resident on a device (the GPU), gathering rows there.

    When the counts fit in GPU memory, keeping them there spares the data pipeline the largest
    transfer of every batch: batches then carry cell indices, and rows are gathered on the device
    with the same CSR index arithmetic as on the CPU.

    Parameters
    ----------
    expression
        The count matrix, in memory.
    device
        Where to keep it.
    """

    def __init__(self, expression: ExpressionMatrix, device: torch.device | str):
        if is_on_disk(expression.matrix):
            raise ValueError(
                "The counts are on disk (backed AnnData); gathering on the GPU needs them in memory. "
                "Load them with `adata = adata.to_memory()` or train without gather_on_device."
            )
        matrix = expression.matrix
        self.is_log1p = expression.is_log1p
        self.n_genes = matrix.shape[1]
        if sparse.issparse(matrix):
            self.indptr = torch.as_tensor(matrix.indptr, dtype=torch.int64, device=device)
            self.indices = torch.as_tensor(matrix.indices, dtype=torch.int64, device=device)
            self.data = torch.as_tensor(matrix.data, dtype=torch.float32, device=device)
            self.dense = None
        else:
            self.dense = torch.as_tensor(matrix, dtype=torch.float32, device=device)

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Counts of ``rows`` (a tensor on the device), ``(len(rows), n_genes)``, ``float32``."""
        if self.dense is not None:
            block = self.dense[rows]
        else:
            starts, stops = self.indptr[rows], self.indptr[rows + 1]
            lengths = stops - starts
            row_of_value = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lengths)
            first_value = torch.cumsum(lengths, 0) - lengths
            positions = torch.arange(int(lengths.sum()), device=rows.device) - first_value[row_of_value]
            positions += starts[row_of_value]
            block = torch.zeros(len(rows), self.n_genes, device=rows.device)
            block[row_of_value, self.indices[positions]] = self.data[positions]
        return torch.expm1(block) if self.is_log1p else block

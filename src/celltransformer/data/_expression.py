"""Row access to the registered count matrix."""

from __future__ import annotations

import numpy as np
from scipy import sparse


class ExpressionMatrix:
    """Gathers rows of a count matrix as dense ``float32`` counts.

    Parameters
    ----------
    matrix
        Dense array or sparse matrix, cells x genes. A CSC matrix is converted to CSR once, since
        gathering rows of CSC is slow (the user's matrix is not changed).
    is_log1p
        Whether ``matrix`` holds ``log1p(counts)``; the counts are then recovered as ``expm1``.
    """

    def __init__(self, matrix, is_log1p: bool = False):
        if sparse.issparse(matrix):
            matrix = sparse.csr_matrix(matrix)
        else:
            matrix = np.asarray(matrix)
        self.matrix = matrix
        self.is_log1p = is_log1p

    @property
    def n_genes(self) -> int:
        """Number of genes (columns)."""
        return self.matrix.shape[1]

    def mean_log1p_by_group(self, groups: np.ndarray, n_groups: int, chunk_size: int = 100_000) -> np.ndarray:
        """Mean ``log1p(counts)`` of every gene within each group of cells, ``(n_groups, n_genes)``.

        Computed chunk by chunk of cells, so no second copy of the matrix is made.
        """
        sums = np.zeros((n_groups, self.n_genes))
        for start in range(0, len(groups), chunk_size):
            block = self.matrix[start : start + chunk_size]
            if sparse.issparse(block):
                block = sparse.csr_matrix(block, dtype=np.float64, copy=True)
                block.data = block.data if self.is_log1p else np.log1p(block.data)
            else:
                block = np.asarray(block, dtype=np.float64)
                block = block if self.is_log1p else np.log1p(block)
            chunk_groups = groups[start : start + chunk_size]
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
        block = self.matrix[rows]
        block = block.toarray() if sparse.issparse(block) else block
        block = block.astype(np.float32, copy=False)
        return np.expm1(block) if self.is_log1p else block

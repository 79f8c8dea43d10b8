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

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Counts of the given rows, shape ``(len(rows), n_genes)``, as ``float32``."""
        block = self.matrix[rows]
        block = block.toarray() if sparse.issparse(block) else block
        block = block.astype(np.float32, copy=False)
        return np.expm1(block) if self.is_log1p else block

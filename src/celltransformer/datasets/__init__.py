"""Datasets: the embedded synthetic tissue, and loaders of real spatial transcriptomics data."""

from ._osmfish import osmfish
from ._starmap import starmap_mpfc
from ._synthetic import synthetic_tissue

__all__ = ["osmfish", "starmap_mpfc", "synthetic_tissue"]

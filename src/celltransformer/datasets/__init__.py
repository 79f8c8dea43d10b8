"""Datasets: the embedded synthetic tissue."""

from ._synthetic import synthetic_tissue

__all__ = ["synthetic_tissue"]

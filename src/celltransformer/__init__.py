"""CellTransformer: transformer embeddings of spatial cell neighbourhoods, and spatial domains."""

from importlib.metadata import version

from . import data, datasets, nn, pl, tl
from .model import CellTransformer

__version__ = version("celltransformer")

__all__ = ["CellTransformer", "data", "datasets", "nn", "pl", "tl"]

"""Tools: spatial domains from neighbourhood embeddings."""

from ._domains import domains

__all__ = ["domains"]

"""Tools: smoothing, spatial domains and their scores."""

from ._domains import domains
from ._scores import score_domains
from ._smooth import smooth

__all__ = ["domains", "score_domains", "smooth"]

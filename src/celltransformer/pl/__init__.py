"""Plots: domains on the tissue and the attention masks of the packed format."""

from ._domains import domains
from ._masks import attention_masks

__all__ = ["attention_masks", "domains"]

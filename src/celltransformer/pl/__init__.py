"""Plots: domains on the tissue, their composition and stability, and the packed format's masks."""

from ._composition import composition
from ._domains import domains
from ._masks import attention_masks
from ._stability import domain_stability

__all__ = ["attention_masks", "composition", "domain_stability", "domains"]

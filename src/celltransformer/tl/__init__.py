"""Tools: smoothing, spatial domains at atlas scale, their stability, composition and scores."""

from ._composition import DomainComposition, domain_composition
from ._domains import domains
from ._scores import score_domains
from ._smooth import smooth
from ._stability import domain_stability

__all__ = ["DomainComposition", "domain_composition", "domain_stability", "domains", "score_domains", "smooth"]

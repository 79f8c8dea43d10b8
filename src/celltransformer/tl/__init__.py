"""Tools: smoothing, spatial domains at atlas scale, their stability, composition, mixing and scores."""

from ._composition import DomainComposition, domain_composition
from ._domains import domains
from ._mixing import domain_mixing
from ._scores import score_domains
from ._smooth import smooth
from ._spacing import cell_spacing
from ._stability import domain_stability
from ._whiten import whiten

__all__ = [
    "DomainComposition",
    "cell_spacing",
    "domain_composition",
    "domain_mixing",
    "domain_stability",
    "domains",
    "score_domains",
    "smooth",
    "whiten",
]

"""The user-facing model and its training plan."""

from ._model import CellTransformer
from ._training_plan import CellTransformerTrainingPlan, inverse_sqrt_with_plateau

__all__ = ["CellTransformer", "CellTransformerTrainingPlan", "inverse_sqrt_with_plateau"]

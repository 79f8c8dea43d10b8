"""Neighbourhoods, packed batches, attention masks and AnnData registration."""

from ._expression import DeviceExpression, ExpressionMatrix
from ._fields import BatchField, CellTypeField, CountsField, SpatialGraphField
from ._graph import NeighborhoodGraph
from ._loading import NeighborhoodDataModule, ReferenceBatchSampler, pack_batch
from ._masks import AttentionMasks, attention_masks
from ._packing import BatchKey, NeighborhoodDataset, pack_neighborhoods

__all__ = [
    "AttentionMasks",
    "BatchField",
    "BatchKey",
    "CellTypeField",
    "CountsField",
    "DeviceExpression",
    "ExpressionMatrix",
    "NeighborhoodDataModule",
    "NeighborhoodDataset",
    "NeighborhoodGraph",
    "ReferenceBatchSampler",
    "SpatialGraphField",
    "attention_masks",
    "pack_batch",
    "pack_neighborhoods",
]

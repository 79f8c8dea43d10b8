"""The CellTransformer network: layers, attention backends and the scvi-tools module."""

from ._attention import AttentionBackend, DenseAttention, PackedAttention
from ._layers import AttentionPool, TransformerLayer, TransformerStack, ZINBHead
from ._module import CellTransformerModule

__all__ = [
    "AttentionBackend",
    "AttentionPool",
    "CellTransformerModule",
    "DenseAttention",
    "PackedAttention",
    "TransformerLayer",
    "TransformerStack",
    "ZINBHead",
]

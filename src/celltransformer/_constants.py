"""Keys shared by the data pipeline, the module and the model."""

from typing import NamedTuple


class _RegistryKeys(NamedTuple):
    """Names under which :meth:`CellTransformer.setup_anndata` registers AnnData fields."""

    X_KEY: str = "X"
    CELL_TYPE_KEY: str = "labels"
    LIBRARY_KEY: str = "library"
    GRAPH_KEY: str = "spatial_graph"
    BATCH_KEY: str = "batch"


class _PackedKeys(NamedTuple):
    """Keys of a packed batch (see :func:`celltransformer.data.pack_neighborhoods`)."""

    NEIGHBOR_COUNTS: str = "neighbor_counts"
    NEIGHBOR_TYPES: str = "neighbor_types"
    NEIGHBOR_INDICES: str = "neighbor_indices"
    REFERENCE_COUNTS: str = "reference_counts"
    REFERENCE_TYPES: str = "reference_types"
    REFERENCE_INDICES: str = "reference_indices"
    OFFSETS: str = "offsets"
    NEIGHBOR_BATCHES: str = "neighbor_batches"
    REFERENCE_BATCHES: str = "reference_batches"
    BATCH_LOG_MEANS: str = "batch_log_means"


REGISTRY_KEYS = _RegistryKeys()
PACKED_KEYS = _PackedKeys()

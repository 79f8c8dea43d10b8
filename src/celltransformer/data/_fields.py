"""AnnDataManager fields for the spatial graph and the count matrix."""

from __future__ import annotations

import pandas as pd
import rich.table
from anndata import AnnData
from scvi.data.fields import BaseAnnDataField, CategoricalObsField, LayerField

from ._validation import (
    validate_counts,
    validate_layer,
    validate_obs_column,
    validate_row_access,
    validate_same_genes,
    validate_sections,
    validate_shape,
    validate_spatial_graph,
)


class SpatialGraphField(BaseAnnDataField):
    """The spatial neighbour graph in ``adata.obsp[spatial_key]``, as written by squidpy.

    Parameters
    ----------
    registry_key
        Key to register the field under in the data registry.
    spatial_key
        Key of the graph in ``adata.obsp``.
    library_key
        Column of ``adata.obs`` with the tissue section of every cell; when given, an edge
        between sections is an error.
    """

    N_EDGES_KEY = "n_spatial_edges"

    def __init__(self, registry_key: str, spatial_key: str, library_key: str | None = None):
        super().__init__()
        self._registry_key = registry_key
        self._attr_key = spatial_key
        self.library_key = library_key

    @property
    def registry_key(self) -> str:
        return self._registry_key

    @property
    def attr_name(self) -> str:
        return "obsp"

    @property
    def attr_key(self) -> str:
        return self._attr_key

    @property
    def is_empty(self) -> bool:
        return False

    def validate_field(self, adata: AnnData) -> None:
        """Check that the graph exists, has one row per cell and stays within sections."""
        validate_spatial_graph(adata, self.attr_key)
        if self.library_key is not None:
            validate_obs_column(adata, self.library_key, "library_key")
            sections = adata.obs[self.library_key].to_numpy()
            validate_sections(adata.obsp[self.attr_key], sections, self.attr_key, self.library_key)

    def register_field(self, adata: AnnData) -> dict:
        """Record the number of edges of the graph."""
        super().register_field(adata)
        graph = adata.obsp[self.attr_key]
        return {self.N_EDGES_KEY: int(graph.nnz)}

    def transfer_field(self, state_registry: dict, adata_target: AnnData, **kwargs) -> dict:
        """Register the target's own graph, stored under the same key."""
        super().transfer_field(state_registry, adata_target, **kwargs)
        return self.register_field(adata_target)

    def get_summary_stats(self, state_registry: dict) -> dict:
        return {self.N_EDGES_KEY: state_registry[self.N_EDGES_KEY]}

    def view_state_registry(self, state_registry: dict) -> rich.table.Table | None:
        return None


class CountsField(LayerField):
    """The count matrix (``adata.X`` or a layer), validated as counts or as ``log1p`` counts.

    Unlike :class:`scvi.data.fields.LayerField`, it never rewrites the user's matrix (a CSC or
    non-contiguous matrix stays as it is), invalid values raise an error instead of a warning,
    and a model's setup transfers only to data with the model's genes in the model's order.

    Parameters
    ----------
    registry_key
        Key to register the field under in the data registry.
    layer
        Layer holding the counts; ``None`` for ``adata.X``.
    is_log1p
        Whether the matrix holds ``log1p(counts)`` rather than counts.
    """

    def __init__(self, registry_key: str, layer: str | None, is_log1p: bool = False):
        super().__init__(registry_key, layer, is_count_data=False, correct_data_format=False)
        self.is_log1p = is_log1p

    def validate_field(self, adata: AnnData) -> None:
        """Check that the matrix exists, can be read by rows and holds counts (integers unless ``log1p``)."""
        validate_shape(adata)
        validate_layer(adata, self.attr_key)
        super().validate_field(adata)
        where = "adata.X" if self.attr_key is None else f"adata.layers[{self.attr_key!r}]"
        matrix = self.get_field_data(adata)
        validate_row_access(matrix, where)
        validate_counts(matrix, where, self.is_log1p)

    def transfer_field(self, state_registry: dict, adata_target: AnnData, **kwargs) -> dict:
        """Register the target's matrix, which must have the genes of training in their order."""
        validate_same_genes(adata_target.var_names, state_registry[self.COLUMN_NAMES_KEY])
        return super().transfer_field(state_registry, adata_target, **kwargs)


class CellTypeField(CategoricalObsField):
    """The cell-type column of ``adata.obs``, refusing cell types the model has not seen.

    Parameters
    ----------
    registry_key
        Key to register the field under in the data registry.
    cell_type_key
        Column of ``adata.obs``; ``None`` registers one shared type for all cells.
    """

    def validate_field(self, adata: AnnData) -> None:
        """Check that the column exists, has no missing values and looks categorical."""
        if not self.is_default:
            validate_obs_column(adata, self._original_attr_key, "cell_type_key")
        super().validate_field(adata)

    def transfer_field(
        self, state_registry: dict, adata_target: AnnData, extend_categories: bool = False, **kwargs
    ) -> dict:
        """Register the target's column with the codes of training; unseen types are an error."""
        if not self.is_default and not extend_categories:
            self.validate_field(adata_target)
            known = pd.Index(state_registry[self.CATEGORICAL_MAPPING_KEY])
            unseen = pd.Index(pd.unique(adata_target.obs[self._original_attr_key])).difference(known)
            if len(unseen):
                raise ValueError(
                    f"{len(unseen)} cell types of adata.obs[{self._original_attr_key!r}] were not "
                    f"seen in training: {list(unseen[:10])}. The model has embeddings for "
                    f"{len(known)} types only. Map those cells to known types, drop them, or extend "
                    "the model to them with `CellTransformer.load_query_data(adata, model)`."
                )
        return super().transfer_field(state_registry, adata_target, extend_categories=extend_categories, **kwargs)


class BatchField(BaseAnnDataField):
    """The column of ``adata.obs`` naming every cell's batch (for example the animal).

    Batches are not mapped to fixed codes: data with batches unseen in training is accepted,
    since the model conditions on each batch's mean expression, computed from the data itself.

    Parameters
    ----------
    registry_key
        Key to register the field under in the data registry.
    batch_key
        Column of ``adata.obs``; ``None`` leaves the field empty.
    """

    N_BATCHES_KEY = "n_batches"

    def __init__(self, registry_key: str, batch_key: str | None):
        super().__init__()
        self._registry_key = registry_key
        self._attr_key = batch_key

    @property
    def registry_key(self) -> str:
        return self._registry_key

    @property
    def attr_name(self) -> str:
        return "obs"

    @property
    def attr_key(self) -> str | None:
        return self._attr_key

    @property
    def is_empty(self) -> bool:
        return self._attr_key is None

    def validate_field(self, adata: AnnData) -> None:
        """Check that the column exists, has no missing values and looks categorical."""
        validate_obs_column(adata, self.attr_key, "batch_key")

    def register_field(self, adata: AnnData) -> dict:
        """Record the number of batches."""
        super().register_field(adata)
        return {self.N_BATCHES_KEY: int(adata.obs[self.attr_key].nunique())}

    def transfer_field(self, state_registry: dict, adata_target: AnnData, **kwargs) -> dict:
        """Register the target's own batches."""
        super().transfer_field(state_registry, adata_target, **kwargs)
        return self.register_field(adata_target)

    def get_summary_stats(self, state_registry: dict) -> dict:
        return {self.N_BATCHES_KEY: state_registry.get(self.N_BATCHES_KEY, 0)}

    def view_state_registry(self, state_registry: dict) -> rich.table.Table | None:
        return None

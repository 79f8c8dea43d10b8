"""Loading checkpoints saved by the published CellTransformer training code.

Those checkpoints are PyTorch Lightning files whose ``state_dict`` holds the network under the
prefix ``model.``. Parameter names are ours except in the attention pool (see
:data:`PUBLISHED_RENAMES`); cell-type tables are indexed by the training's own codes, so their rows
are reordered to the categories registered for the user's data.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi import settings
from scvi.data import AnnDataManager

from celltransformer._constants import REGISTRY_KEYS
from celltransformer.nn._module import CELL_TYPE_TABLES, AttentionKind

PUBLISHED_PREFIX = "model."
IGNORED_PUBLISHED_PARAMETERS = ("pooling_token",)
"""Parameters of the published network that its forward pass never uses."""

PUBLISHED_RENAMES = (
    ("attn_pool.query_token", "attn_pool.query"),
    ("attn_pool.norm", "attn_pool.query_norm"),
    # The published names are swapped: ``norm_v`` normalises the keys, ``norm_k`` the values.
    ("attn_pool.norm_v", "attn_pool.key_norm"),
    ("attn_pool.norm_k", "attn_pool.value_norm"),
    ("attn_pool.norm2", "attn_pool.output_norm"),
)
"""``(published name, our name)`` of every parameter or submodule whose name differs."""


def _rename(name: str, old: str, new: str) -> str | None:
    """``name`` with the parameter or submodule path ``old`` replaced by ``new``; ``None`` if not under it."""
    if name == old or name.startswith(old + "."):
        return new + name.removeprefix(old)
    return None


def module_parameter_name(published_name: str) -> str:
    """Our module's name for a parameter of the published network."""
    for published, ours in PUBLISHED_RENAMES:
        if (renamed := _rename(published_name, published, ours)) is not None:
            return renamed
    return published_name


def published_parameter_name(module_name: str) -> str:
    """The published network's name for a parameter of our module."""
    for published, ours in PUBLISHED_RENAMES:
        if (renamed := _rename(module_name, ours, published)) is not None:
            return renamed
    return module_name


def _torch_load(path: str | os.PathLike) -> object:
    """Load a checkpoint on the CPU, unpickling arbitrary objects only when tensors do not suffice.

    Lightning checkpoints often store hyper-parameters as Python objects that ``weights_only=True``
    refuses; those need the full unpickler, which can run code stored in the file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        warnings.warn(
            f"{os.fspath(path)} holds Python objects besides tensors (e.g. Lightning hyper-parameters), "
            "so it is loaded with torch.load(..., weights_only=False), which can run code stored in the "
            "file: load only checkpoints you trust.",
            UserWarning,
            stacklevel=settings.warnings_stacklevel,
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError) as error:
        raise ValueError(
            f"{os.fspath(path)} stores objects of the training code that cannot be imported here ({error}). "
            "Where that code is installed, keep only the weights: `checkpoint = torch.load(path, "
            "weights_only=False); torch.save({'state_dict': checkpoint['state_dict']}, 'weights.ckpt')`, "
            "and load that file."
        ) from error


def read_published_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the published network's parameters from a checkpoint file.

    Parameters
    ----------
    path
        A Lightning checkpoint (a dict whose ``"state_dict"`` holds the parameters) or a plain
        state dict, with or without the ``model.`` prefix.

    Returns
    -------
    Parameters by their published names, without the ``model.`` prefix.
    """
    checkpoint = _torch_load(path)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(
            f"{os.fspath(path)} is not a checkpoint of the published CellTransformer code: expected a "
            "Lightning checkpoint (a dict whose 'state_dict' maps parameter names to tensors) or such a "
            f"state dict, got {type(checkpoint).__name__}."
        )
    return {name.removeprefix(PUBLISHED_PREFIX): tensor for name, tensor in state.items()}


def _missing_parameter(name: str) -> ValueError:
    return ValueError(
        f"The checkpoint has no parameter {name!r} (looked up as {PUBLISHED_PREFIX + name!r}): it does "
        "not hold the published CellTransformer network."
    )


def _published_tensor(state: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in state:
        raise _missing_parameter(name)
    return state[name]


def _n_layers(state: Mapping[str, torch.Tensor], stack: str) -> int:
    prefix = f"{stack}.layers."
    indices = {int(name.removeprefix(prefix).split(".")[0]) for name in state if name.startswith(prefix)}
    if not indices:
        raise _missing_parameter(f"{prefix}0.linear1.weight")
    return max(indices) + 1


def published_architecture(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Sizes of the published network that its weights reveal.

    Parameters
    ----------
    state
        Parameters by their published names.

    Returns
    -------
    ``d_model``, ``n_encoder_layers``, ``n_decoder_layers`` and ``dim_feedforward``, as keyword
    arguments of :class:`~celltransformer.CellTransformer`. The number of heads leaves no trace
    in the weights.
    """
    return {
        "d_model": _published_tensor(state, "cls_token").shape[-1],
        "n_encoder_layers": _n_layers(state, "encoder"),
        "n_decoder_layers": _n_layers(state, "decoder"),
        "dim_feedforward": _published_tensor(state, "encoder.layers.0.linear1.weight").shape[0],
    }


def check_gene_panel(state: Mapping[str, torch.Tensor], n_genes: int) -> None:
    """Raise unless the checkpoint was trained on ``n_genes`` genes."""
    n_checkpoint_genes = _published_tensor(state, "expression_projection.0.weight").shape[1]
    if n_checkpoint_genes != n_genes:
        raise ValueError(
            f"The checkpoint was trained on {n_checkpoint_genes} genes, but adata has {n_genes}. Subset "
            "and order adata to the training gene panel, `adata = adata[:, panel_genes].copy()`, then "
            "call CellTransformer.setup_anndata on it again."
        )


def _shape_to_match(name: str, shape: torch.Size) -> torch.Size:
    """Cell-type tables may have any number of rows; only their width must match."""
    return shape[1:] if name in CELL_TYPE_TABLES else shape


def check_parameters(state: Mapping[str, torch.Tensor], module_state: Mapping[str, torch.Tensor]) -> None:
    """Raise unless ``state`` holds exactly the module's parameters, in the module's shapes.

    Parameters
    ----------
    state
        Parameters by their published names.
    module_state
        State dict of the module to load into. Cell-type tables may differ in their number of rows.
    """
    expected = {published_parameter_name(name): tensor.shape for name, tensor in module_state.items()}
    given = set(state).difference(IGNORED_PUBLISHED_PARAMETERS)
    missing, unexpected = sorted(set(expected) - given), sorted(given - set(expected))
    if missing:
        raise ValueError(
            f"The checkpoint lacks {len(missing)} parameters of the published network: {missing[:10]}. "
            "Load the complete checkpoint that the published training code saved, not a part of it."
        )
    if unexpected:
        raise ValueError(
            f"The checkpoint has {len(unexpected)} parameters that the published network does not: "
            f"{unexpected[:10]}. It was saved from another architecture; remove them from its "
            "'state_dict' only if you know that the network never used them."
        )
    misshaped = [
        f"{name}: {tuple(state[name].shape)} in the checkpoint, {tuple(shape)} expected"
        for name, shape in expected.items()
        if _shape_to_match(name, state[name].shape) != _shape_to_match(name, shape)
    ]
    if misshaped:
        raise ValueError(
            f"{len(misshaped)} parameters of the checkpoint do not have the published shapes "
            f"({'; '.join(misshaped[:10])}). The checkpoint comes from another version of the architecture, "
            "which this loader does not support."
        )


def registered_cell_types(adata_manager: AnnDataManager) -> np.ndarray:
    """Cell-type names in the order of the model's codes; an error if adata has no cell types."""
    if adata_manager.registry["setup_args"]["cell_type_key"] is None:
        raise ValueError(
            "The published network embeds cell types, but adata was set up without them: call "
            "CellTransformer.setup_anndata with cell_type_key."
        )
    return adata_manager.get_state_registry(REGISTRY_KEYS.CELL_TYPE_KEY).categorical_mapping


def default_cell_type_order(adata_manager: AnnDataManager) -> list:
    """The sorted cell-type names of the registered data, with a warning that this is a guess."""
    codes = np.unique(adata_manager.get_from_registry(REGISTRY_KEYS.CELL_TYPE_KEY))
    order = sorted(registered_cell_types(adata_manager)[codes])
    warnings.warn(
        f"cell_type_order is None: assuming training coded cell types as the {len(order)} sorted cell "
        "types of adata. This is right only if training used exactly these labels; otherwise pass "
        "cell_type_order, the sorted label names of the training data.",
        UserWarning,
        stacklevel=settings.warnings_stacklevel,
    )
    return order


def cell_type_rows(categories: Sequence, cell_type_order: Sequence, n_rows: int) -> np.ndarray:
    """Row of the checkpoint's cell-type tables for every registered category.

    Parameters
    ----------
    categories
        Cell-type names in the order of the model's codes.
    cell_type_order
        Cell-type names in the order of the training's codes (``cell_type_order[i]`` has code ``i``).
    n_rows
        Rows of the checkpoint's cell-type tables.

    Returns
    -------
    Integer array with ``categories[i]``'s row at position ``i``.
    """
    order = pd.Index(cell_type_order)
    if order.has_duplicates:
        raise ValueError(
            f"cell_type_order names some cell types twice: {list(order[order.duplicated()].unique()[:10])}."
        )
    if len(order) > n_rows:
        raise ValueError(
            f"cell_type_order has {len(order)} names, but the checkpoint's cell-type tables have only "
            f"{n_rows} rows. Pass the names of the training's cell types only."
        )
    rows = order.get_indexer(categories)
    if (rows < 0).any():
        unknown = [category for category, row in zip(categories, rows, strict=True) if row < 0]
        raise ValueError(
            f"{len(unknown)} cell types of adata have no code in cell_type_order: {unknown[:10]}. The "
            "checkpoint has no embedding for them: if training knew them under another spelling, rename "
            "them in adata.obs to that spelling; otherwise remove those cells (and unused categories). "
            "Then call setup_anndata again."
        )
    return rows


def module_state(state: Mapping[str, torch.Tensor], rows: np.ndarray) -> dict[str, torch.Tensor]:
    """The checkpoint's parameters under our names, cell-type tables cut to ``rows``."""
    renamed = {
        module_parameter_name(name): tensor
        for name, tensor in state.items()
        if name not in IGNORED_PUBLISHED_PARAMETERS
    }
    for table in CELL_TYPE_TABLES:
        renamed[table] = renamed[table][torch.from_numpy(rows)]
    return renamed


def load_published_checkpoint(
    model_cls: type,
    path: str | os.PathLike,
    adata: AnnData,
    cell_type_order: Sequence | None = None,
    n_heads: int = 8,
    attention: AttentionKind = "fast",
    max_neighbors: int = 250,
):
    """Build a model of ``model_cls`` holding the weights of a published checkpoint.

    See :meth:`celltransformer.CellTransformer.from_published_checkpoint`.
    """
    state = read_published_state_dict(path)
    model = model_cls(
        adata, n_heads=n_heads, attention=attention, max_neighbors=max_neighbors, **published_architecture(state)
    )
    check_gene_panel(state, model.summary_stats.n_vars)
    check_parameters(state, model.module.state_dict())
    categories = registered_cell_types(model.adata_manager)
    if cell_type_order is None:
        cell_type_order = default_cell_type_order(model.adata_manager)
    rows = cell_type_rows(categories, cell_type_order, n_rows=len(state[CELL_TYPE_TABLES[0]]))
    model.module.load_state_dict(module_state(state, rows))
    model.is_trained_ = True
    return model

"""The user-facing CellTransformer model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from anndata import AnnData
from tqdm.auto import tqdm
from scvi.data import AnnDataManager
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from celltransformer._constants import PACKED_KEYS, REGISTRY_KEYS
from celltransformer.data import BatchField, CellTypeField, CountsField, SpatialGraphField
from celltransformer.data._loading import (
    NeighborhoodDataModule,
    neighborhood_dataset,
    neighborhood_loader,
    registered_expression,
)
from celltransformer.data._validation import validate_not_view
from celltransformer.nn import CellTransformerModule
from celltransformer.nn._module import AttentionKind, per_cell_pearson

from ._distributed_inference import embed_on_devices
from ._published import load_published_checkpoint
from ._training_plan import CellTransformerTrainingPlan

Representation = Literal["embedding", "pooled"]
DEFAULT_INFERENCE_BATCH_SIZE = 128
DEFAULT_TRAINING_STEPS = 10_000
MAX_DEFAULT_EPOCHS = 100


class CellTransformer(BaseModelClass):
    """Transformer embeddings of spatial cell neighbourhoods.

    For every reference cell the model hides the cell, encodes its spatial neighbours (cell type
    and expression of each) with a transformer, pools the neighbourhood into one token, and decodes
    that token with a query made from the reference cell's type to predict the reference cell's
    counts under a zero-inflated negative binomial likelihood. The pooled token, after the
    decoder, is the cell's neighbourhood embedding.

    The defaults reproduce the published architecture.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    registry
        Registry of a saved model, to build the model without data (as :meth:`load` does with
        ``adata=False``).
    d_model
        Token width, which is also the width of the embedding.
    n_heads
        Attention heads.
    n_encoder_layers, n_decoder_layers
        Depth of the encoder and of the decoder.
    dim_feedforward
        Hidden width of the feed-forward blocks.
    dropout
        Dropout probability.
    max_neighbors
        Cap on a neighbourhood's size during training: larger neighbourhoods are subsampled at
        random in every epoch. Inference uses every neighbour unless told otherwise.
    attention
        ``"fast"`` (default) computes attention per neighbourhood without building the quadratic
        masks; ``"dense"`` selects the reference path under the dense masks. Both give the same
        numbers; switch an existing model with ``model.module.attention = "dense"``.
    checkpoint_activations
        Recompute activations during the backward pass instead of storing them: much less
        training memory (for large ``max_neighbors`` or batches), about a third more compute.

    Examples
    --------
    >>> sq.gr.spatial_neighbors_radius(adata, radius=50.0, library_key="section")
    >>> ct.CellTransformer.setup_anndata(adata, layer="counts", cell_type_key="cell_type",
    ...                                  library_key="section")
    >>> model = ct.CellTransformer(adata)
    >>> model.train(max_epochs=10)
    >>> model.embed(adata)  # adata.obsm["X_celltransformer"]
    """

    _module_cls = CellTransformerModule
    _training_plan_cls = CellTransformerTrainingPlan
    _data_splitter_cls = NeighborhoodDataModule
    _train_runner_cls = TrainRunner

    def __init__(
        self,
        adata: AnnData | None = None,
        registry: dict | None = None,
        d_model: int = 384,
        n_heads: int = 8,
        n_encoder_layers: int = 4,
        n_decoder_layers: int = 4,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        max_neighbors: int = 250,
        attention: AttentionKind = "fast",
        checkpoint_activations: bool = False,
    ):
        super().__init__(adata, registry)
        if max_neighbors < 1:
            raise ValueError(f"max_neighbors must be at least 1, got {max_neighbors}.")
        self.max_neighbors = max_neighbors
        self.module = self._module_cls(
            n_genes=self.summary_stats.n_vars,
            n_cell_types=self.summary_stats.n_labels,
            d_model=d_model,
            n_heads=n_heads,
            n_encoder_layers=n_encoder_layers,
            n_decoder_layers=n_decoder_layers,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            attention=attention,
            checkpoint_activations=checkpoint_activations,
            batch_conditioned=self.registry["setup_args"].get("batch_key") is not None,
        )
        self._model_summary_string = (
            f"CellTransformer: d_model={d_model}, heads={n_heads}, "
            f"layers={n_encoder_layers}+{n_decoder_layers}, feed-forward={dim_feedforward}, "
            f"genes={self.summary_stats.n_vars}, cell types={self.summary_stats.n_labels}, "
            f"max_neighbors={max_neighbors}, attention={attention!r}"
        )
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        cell_type_key: str | None = None,
        spatial_key: str = "spatial_connectivities",
        library_key: str | None = None,
        expression_is_log1p: bool = False,
        batch_key: str | None = None,
        **kwargs,
    ) -> None:
        """Register an AnnData with a spatial graph for CellTransformer.

        Writes the scvi-tools bookkeeping keys ``adata.uns["_scvi_uuid"]``,
        ``adata.uns["_scvi_manager_uuid"]`` and the integer codes ``adata.obs["_scvi_labels"]``;
        nothing else of ``adata`` changes.

        Parameters
        ----------
        adata
            AnnData with counts and a spatial graph.
        layer
            Layer holding the raw counts; ``None`` for ``adata.X``.
        cell_type_key
            Column of ``adata.obs`` with cell types. ``None`` trains without cell types: neighbour
            tokens then carry expression only (next to one learned type vector shared by all
            cells) and the decoding query is a learned vector.
        spatial_key
            Key of the spatial graph in ``adata.obsp``, as written by squidpy's builders
            (``sq.gr.spatial_neighbors_radius``, ``_knn`` or ``_delaunay``). The neighbourhood
            of a cell is its graph neighbours, never itself.
        library_key
            Column of ``adata.obs`` with the tissue section of every cell. The graph must not link
            cells of different sections (build it with ``library_key`` in squidpy).
        expression_is_log1p
            Set to ``True`` if the matrix holds ``log1p(counts)`` (as many public files do); counts
            are then recovered as ``expm1``. Otherwise the matrix must hold non-negative integers.
        batch_key
            Column of ``adata.obs`` with batches whose expression differs for technical reasons
            (animals, runs, platforms), so that embeddings do not split by batch: each neighbour's
            ``log1p`` expression is centred on its batch's mean before the encoder sees it, and
            the output head is told the reference cell's batch mean. The means are computed from
            the data at hand, so new batches need no retraining. Centring also removes real
            differences between batches that cover different tissue; use it for batches that
            sample comparable tissue.
        """
        validate_not_view(adata)
        setup_method_args = cls._get_setup_method_args(**locals())
        # The cell-type field is the only one that writes to adata, so it goes last: a refused
        # input leaves adata as it was.
        anndata_fields = [
            CountsField(REGISTRY_KEYS.X_KEY, layer, is_log1p=expression_is_log1p),
            SpatialGraphField(REGISTRY_KEYS.GRAPH_KEY, spatial_key, library_key),
            BatchField(REGISTRY_KEYS.BATCH_KEY, batch_key),
            CellTypeField(REGISTRY_KEYS.CELL_TYPE_KEY, cell_type_key),
        ]
        adata_manager = AnnDataManager(fields=anndata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **kwargs)
        cls.register_manager(adata_manager)

    @classmethod
    def load_query_data(
        cls,
        adata: AnnData,
        reference_model: CellTransformer | str | os.PathLike,
        unfrozen: bool = False,
        accelerator: str = "auto",
        device: int | str = "auto",
    ) -> CellTransformer:
        """Extend a trained model to query data whose cell types may be new (scArches-style).

        The query is registered with the reference's setup, its unseen cell types appended to
        the reference's. The returned model holds the reference weights; the embedding rows of the
        new cell types start fresh and, unless ``unfrozen``, are the only weights that
        :meth:`train` changes. Train it on the query, then embed as usual.

        Parameters
        ----------
        adata
            Query AnnData with the reference's genes in the same order and a spatial graph.
        reference_model
            A trained model, or the folder it was saved to.
        unfrozen
            Train every weight instead of the new cell types' embeddings only.
        accelerator, device
            Where to load a saved reference (as in :meth:`load`).

        Returns
        -------
        The query model.
        """
        if not isinstance(reference_model, CellTransformer):
            reference_model = cls.load(reference_model, adata=False, accelerator=accelerator, device=device)
        registry = reference_model.registry
        # The counts field refuses genes that differ from the reference's, before anything is written.
        cls.setup_anndata(adata, source_registry=registry, extend_categories=True, **registry["setup_args"])
        model = cls(adata, **reference_model.init_params_["non_kwargs"])
        model.module.load_reference_state(reference_model.module.state_dict(), freeze=not unfrozen)
        return model

    @classmethod
    def from_published_checkpoint(
        cls,
        path: str | os.PathLike,
        adata: AnnData,
        cell_type_order: Sequence | None = None,
        n_heads: int = 8,
        attention: AttentionKind = "fast",
        max_neighbors: int = 250,
    ) -> CellTransformer:
        """Load a model trained with the published CellTransformer code.

        The checkpoint is a file saved by PyTorch Lightning whose ``state_dict`` holds the
        network under the prefix ``model.``. Its width, depth, feed-forward width and number of
        genes are read from the weights; the unused ``pooling_token`` is ignored. The returned
        model is marked as trained: embed right away, or fine-tune it with :meth:`train`. See
        :doc:`/published_checkpoints`.

        Parameters
        ----------
        path
            The checkpoint file. It is read on the CPU with ``weights_only=True`` when it holds
            nothing but tensors, and otherwise (with a warning) by the full unpickler.
        adata
            AnnData registered with :meth:`setup_anndata`, with a ``cell_type_key``. Its genes
            must be the training panel, in the training order.
        cell_type_order
            The training's cell-type names in the order of their codes, i.e. sorted alphabetically
            as the published code coded them. Every cell type of ``adata`` must be among them; the
            list may be shorter than the checkpoint's embedding tables. ``None`` assumes that
            training used exactly the cell types of ``adata``, and warns.
        n_heads
            Attention heads of the checkpoint, which its weights do not reveal.
        attention, max_neighbors
            As in :class:`CellTransformer`.

        Returns
        -------
        A trained model on ``adata``.

        Examples
        --------
        >>> ct.CellTransformer.setup_anndata(adata, cell_type_key="subclass", library_key="section")
        >>> subclasses = sorted(training_adata.obs["subclass"].unique())
        >>> model = ct.CellTransformer.from_published_checkpoint("last.ckpt", adata,
        ...                                                       cell_type_order=subclasses)
        >>> model.embed(adata)
        """
        return load_published_checkpoint(
            cls, path, adata, cell_type_order, n_heads=n_heads, attention=attention, max_neighbors=max_neighbors
        )

    def train(
        self,
        max_epochs: int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float | None = None,
        validation_size: float | None = None,
        shuffle_set_split: bool = True,
        batch_size: int = 32,
        early_stopping: bool = False,
        num_workers: int = 0,
        gather_on_device: bool = False,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ):
        """Train the model.

        Parameters
        ----------
        max_epochs
            Passes over the training reference cells. ``None`` picks enough epochs for about
            10,000 optimizer steps, at most 100.
        accelerator
            ``"cpu"``, ``"gpu"``, ``"auto"``, ... as in Lightning.
        devices
            Devices to use, as in Lightning.
        train_size
            Fraction of reference cells used for training (default 0.9). Neighbours are always
            drawn from all cells.
        validation_size
            Fraction of reference cells used for validation (default: the rest).
        shuffle_set_split
            Whether to shuffle cells before splitting them.
        batch_size
            Neighbourhoods per batch.
        early_stopping
            Stop when ``nll_validation`` stops improving (see :class:`scvi.train.Trainer`).
        num_workers
            DataLoader worker processes that sample and pack batches.
        gather_on_device
            Keep the count matrix on the training device (the GPU) and gather each batch's counts
            there; batches then carry only cell indices, so the data pipeline does not starve a
            fast GPU. Needs the counts to fit in device memory.
        plan_kwargs
            Keyword arguments of :class:`~celltransformer.model.CellTransformerTrainingPlan`
            (``lr``, ``weight_decay``, ``warmup_steps``, ``plateau_steps``, ``timescale``).
        datasplitter_kwargs
            Further keyword arguments of :class:`~celltransformer.data.NeighborhoodDataModule`.
        **trainer_kwargs
            Keyword arguments of :class:`scvi.train.Trainer` and Lightning's ``Trainer``.

        Notes
        -----
        To resume an interrupted training, save Lightning checkpoints and pass the last one back
        as ``ckpt_path`` to a model built the same way, with :attr:`scvi.settings.seed` set to the
        same value both times (it fixes the split, the batches and the dropout masks)::

            from lightning.pytorch.callbacks import ModelCheckpoint

            model.train(max_epochs=50, enable_checkpointing=True,
                        callbacks=[ModelCheckpoint(dirpath="checkpoints", save_last=True)])
            # after the interruption
            model = ct.CellTransformer(adata, **same_arguments)
            model.train(max_epochs=50, ckpt_path="checkpoints/last.ckpt")

        The resumed training ends in the state an uninterrupted one reaches. With
        ``enable_checkpointing=True`` scvi-tools also saves its best model under
        :attr:`scvi.settings.logging_dir`.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if max_epochs is not None and max_epochs < 1:
            raise ValueError(f"max_epochs must be at least 1 (or None to pick it), got {max_epochs}.")
        if num_workers < 0:
            raise ValueError(
                f"num_workers must be at least 0 (0 packs batches in the main process), got {num_workers}."
            )
        datamodule = self._data_splitter_cls(
            self.adata_manager,
            train_size=train_size,
            validation_size=validation_size,
            shuffle_set_split=shuffle_set_split,
            batch_size=batch_size,
            max_neighbors=self.max_neighbors,
            num_workers=num_workers,
            gather_on_device=gather_on_device,
            **(datasplitter_kwargs or {}),
        )
        if max_epochs is None:
            steps_per_epoch = max(1, datamodule.n_train // batch_size)
            max_epochs = int(np.clip(DEFAULT_TRAINING_STEPS // steps_per_epoch, 1, MAX_DEFAULT_EPOCHS))
        if self.is_trained_ and self.history_ is None:
            # Trained elsewhere (a published checkpoint): scvi-tools only starts a history for
            # models it considers untrained, so let this training start it.
            self.is_trained_ = False
        device_counts = None
        if gather_on_device:
            device_counts = registered_expression(self.adata_manager)
        training_plan = self._training_plan_cls(self.module, device_counts=device_counts, **(plan_kwargs or {}))
        trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
        # The batch sampler splits cells between processes itself; Lightning must not wrap it.
        trainer_kwargs.setdefault("use_distributed_sampler", False)
        trainer_kwargs.setdefault("early_stopping_monitor", "nll_validation")
        trainer_kwargs.setdefault("checkpointing_monitor", "nll_validation")
        runner = self._train_runner_cls(
            self,
            training_plan=training_plan,
            data_splitter=datamodule,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            early_stopping=early_stopping,
            **trainer_kwargs,
        )
        return runner()

    def _inference_batches(
        self,
        adata: AnnData | None,
        indices: np.ndarray | None,
        batch_size: int | None,
        max_neighbors: int | None,
        progress_bar: bool = False,
    ):
        """Yield ``(tensors, inference outputs)`` over the reference cells, one batch at a time.

        Only one packed batch exists at a time. Callers run under :func:`torch.inference_mode`.
        """
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if max_neighbors is not None and max_neighbors < 1:
            raise ValueError(
                f"max_neighbors must be at least 1 (or None for every neighbour), got {max_neighbors}."
            )
        adata = self._validate_anndata(adata)
        adata_manager = self.get_anndata_manager(adata, required=True)
        indices = np.arange(adata.n_obs) if indices is None else np.asarray(indices)
        if len(indices) and not (0 <= indices.min() and indices.max() < adata.n_obs):
            raise IndexError(
                f"indices must be positions of cells, from 0 to {adata.n_obs - 1}; "
                f"got values from {indices.min()} to {indices.max()}."
            )
        dataset = neighborhood_dataset(adata_manager, max_neighbors, random_cap=False)
        loader = neighborhood_loader(dataset, indices, batch_size or DEFAULT_INFERENCE_BATCH_SIZE)
        self.module.eval()
        for tensors in tqdm(loader, desc="Embedding", unit="batch", disable=not progress_bar):
            inference_outputs = self.module.inference(**self.module._get_inference_input(tensors))
            yield tensors, inference_outputs

    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: np.ndarray | None = None,
        batch_size: int | None = None,
        max_neighbors: int | None = None,
        representation: Representation = "embedding",
    ) -> np.ndarray:
        """Neighbourhood embedding of every reference cell.

        Parameters
        ----------
        adata
            AnnData set up like the training data; defaults to it.
        indices
            Cells to embed; defaults to all.
        batch_size
            Neighbourhoods per batch (default 128).
        max_neighbors
            Cap on a neighbourhood's size; ``None`` (default) uses every neighbour. With a cap,
            the same neighbours are picked every time.
        representation
            ``"embedding"`` (default): the decoder output at the pooled position, the published
            neighbourhood representation; it also carries the reference cell's type, which the
            decoder mixes in. ``"pooled"``: the attention-pooled token before the decoder, a
            description of the neighbourhood alone.

        Returns
        -------
        Array of shape ``(n_cells, d_model)``.
        """
        adata = self.adata if adata is None else adata
        n_cells = adata.n_obs if indices is None else len(indices)
        latent = np.empty((n_cells, self.module.cls_token.shape[1]), dtype=np.float32)
        self._write_latent(latent, adata, indices, batch_size, max_neighbors, representation)
        return latent

    @torch.inference_mode()
    def _write_latent(
        self,
        destination: np.ndarray,
        adata: AnnData,
        indices: np.ndarray | None,
        batch_size: int | None,
        max_neighbors: int | None,
        representation: Representation,
        progress_bar: bool = False,
    ) -> None:
        """Fill ``destination`` (an array or a memory-mapped file) with embeddings, batch by batch."""
        if representation not in ("embedding", "pooled"):
            raise ValueError(f"representation must be 'embedding' or 'pooled', got {representation!r}.")
        self._check_if_trained(warn=True)
        start = 0
        for _, outputs in self._inference_batches(adata, indices, batch_size, max_neighbors, progress_bar):
            block = outputs[representation].float().cpu().numpy()
            destination[start : start + len(block)] = block
            start += len(block)

    def embed(
        self,
        adata: AnnData | None = None,
        key_added: str = "X_celltransformer",
        batch_size: int | None = None,
        max_neighbors: int | None = None,
        representation: Representation = "embedding",
        out: str | os.PathLike | None = None,
        progress_bar: bool = True,
        **trainer_kwargs,
    ) -> None:
        """Write the neighbourhood embedding of every cell to ``adata.obsm[key_added]`` or a file.

        Batches are embedded one at a time and written as they come, so memory holds the
        embeddings and one packed batch. For data whose embeddings do not fit in memory, give
        ``out``: the embeddings then go, batch by batch, to a ``.npy`` file (open it with
        ``np.load(out, mmap_mode="r")``) and ``adata`` is left unchanged.

        Across several devices or machines, give ``out`` and Lightning ``Trainer`` arguments,
        e.g. ``accelerator="gpu", devices=4, strategy="ddp"``, and launch the script as for
        training: every process embeds its own share of the cells with ``Trainer.predict`` and
        writes its rows into the same file.

        Parameters
        ----------
        adata
            AnnData set up like the training data; defaults to it.
        key_added
            Key in ``adata.obsm``.
        batch_size, max_neighbors, representation
            See :meth:`get_latent_representation`.
        out
            Path of a ``.npy`` file to write instead of ``adata.obsm``.
        progress_bar
            Show a progress bar over batches.
        **trainer_kwargs
            Arguments of Lightning's ``Trainer`` (``accelerator``, ``devices``, ``strategy``,
            ``num_nodes``, ...) for embedding across devices; they require ``out``.
        """
        adata = self.adata if adata is None else adata
        if trainer_kwargs:
            if out is None:
                raise ValueError(
                    "Embedding across devices writes to a file: pass out='embedding.npy' along with "
                    f"{sorted(trainer_kwargs)}."
                )
            self._check_if_trained(warn=True)
            adata = self._validate_anndata(adata)
            embed_on_devices(
                self.module,
                self.get_anndata_manager(adata, required=True),
                out,
                batch_size or DEFAULT_INFERENCE_BATCH_SIZE,
                max_neighbors,
                representation,
                enable_progress_bar=progress_bar,
                **trainer_kwargs,
            )
            return
        shape = (adata.n_obs, self.module.cls_token.shape[1])
        if out is None:
            destination = np.empty(shape, dtype=np.float32)
        else:
            destination = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=shape)
        self._write_latent(destination, adata, None, batch_size, max_neighbors, representation, progress_bar)
        if out is None:
            adata.obsm[key_added] = destination
        else:
            destination.flush()

    @torch.inference_mode()
    def get_predicted_expression(
        self,
        adata: AnnData | None = None,
        indices: np.ndarray | None = None,
        batch_size: int | None = None,
        max_neighbors: int | None = None,
    ) -> np.ndarray:
        """Expression of each reference cell predicted from its neighbourhood (the ZINB mean).

        Parameters
        ----------
        adata, indices, batch_size, max_neighbors
            See :meth:`get_latent_representation`.

        Returns
        -------
        Array of shape ``(n_cells, n_genes)``, in counts.
        """
        self._check_if_trained(warn=True)
        predictions = []
        for tensors, outputs in self._inference_batches(adata, indices, batch_size, max_neighbors):
            px = self.module.generative(**self.module._get_generative_input(tensors, outputs))["px"]
            predictions.append(px.mean.cpu().numpy())
        return np.concatenate(predictions)

    @torch.inference_mode()
    def get_reconstruction_error(
        self,
        adata: AnnData | None = None,
        indices: np.ndarray | None = None,
        batch_size: int | None = None,
        max_neighbors: int | None = None,
    ) -> dict[str, float]:
        """How well neighbourhoods predict the reference cells' counts.

        Parameters
        ----------
        adata, indices, batch_size, max_neighbors
            See :meth:`get_latent_representation`.

        Returns
        -------
        ``{"nll": ..., "pearson": ...}``: the ZINB negative log-likelihood averaged over genes
        and cells, and the mean per-cell Pearson correlation between predicted mean and counts
        (the ``nll_validation`` and ``pearson_validation`` of training).
        """
        nll_sum, pearson_sum, n_cells, n_correlated = 0.0, 0.0, 0, 0
        for tensors, outputs in self._inference_batches(adata, indices, batch_size, max_neighbors):
            generative_outputs = self.module.generative(**self.module._get_generative_input(tensors, outputs))
            counts = tensors[PACKED_KEYS.REFERENCE_COUNTS].to(self.module.device)
            loss_output = self.module.loss({PACKED_KEYS.REFERENCE_COUNTS: counts}, outputs, generative_outputs)
            nll_sum += loss_output.loss.item() * len(counts)
            n_cells += len(counts)
            correlations = per_cell_pearson(generative_outputs["px"].mean, counts)
            defined = ~torch.isnan(correlations)
            pearson_sum += correlations[defined].sum().item()
            n_correlated += int(defined.sum())
        return {"nll": nll_sum / n_cells, "pearson": pearson_sum / max(n_correlated, 1)}

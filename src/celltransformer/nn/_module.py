"""The CellTransformer network as an scvi-tools module."""

from __future__ import annotations

from typing import Literal

import torch
from scvi.distributions import ZeroInflatedNegativeBinomial
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from celltransformer._constants import PACKED_KEYS

from ._attention import AttentionBackend, DenseAttention, PackedAttention
from ._layers import LAYER_NORM_EPS, AttentionPool, TransformerStack, ZINBHead

AttentionKind = Literal["fast", "dense"]
CELL_TYPE_TABLES = ("encoder_cell_embed.weight", "decoder_cell_embed.weight")


def per_cell_pearson(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Pearson correlation across genes of every cell; ``nan`` where either side is constant."""
    predicted = predicted - predicted.mean(dim=1, keepdim=True)
    observed = observed - observed.mean(dim=1, keepdim=True)
    covariance = (predicted * observed).sum(dim=1)
    scale = predicted.norm(dim=1) * observed.norm(dim=1)
    return torch.where(scale > 0, covariance / scale, torch.full_like(scale, float("nan")))


class CellTransformerModule(BaseModuleClass):
    """Encoder, attention pooling and decoder over packed neighbourhoods, with a ZINB likelihood.

    Each neighbour token joins a cell-type embedding (``d_model / 2``) to a projection of
    ``log1p`` expression (``d_model / 2``); the tokens and one learned ``<cls>`` token per
    neighbourhood pass a LayerNorm and the encoder. Attention pooling turns each neighbourhood into
    one token; the decoder sees pooled token ``i`` and a query embedding the type of reference cell
    ``i``, and the decoding token predicts the reference cell's counts.

    Parameters
    ----------
    n_genes
        Number of genes.
    n_cell_types
        Number of cell types (rows of the embedding tables); 1 when cell types are not used.
    d_model
        Token width.
    n_heads
        Attention heads in every attention step.
    n_encoder_layers, n_decoder_layers
        Depth of the encoder and decoder.
    dim_feedforward
        Hidden width of the feed-forward blocks.
    dropout
        Dropout in attention, residual and feed-forward paths.
    attention
        ``"fast"`` (default) computes attention per neighbourhood without building masks
        (:class:`~celltransformer.nn.PackedAttention`); ``"dense"`` is the reference path under
        the dense masks of the packed format (:class:`~celltransformer.nn.DenseAttention`).
        Both give the same numbers.
    checkpoint_activations
        Recompute the transformer layers' activations in the backward pass instead of storing
        them: much less training memory for large neighbourhoods or batches, about a third more
        compute. Results are unchanged.
    batch_conditioned
        Condition on batches (e.g. animals): every neighbour's ``log1p`` expression is centred
        on its batch's mean before the projection, so batch-wide shifts never reach the
        embedding, and the output head adds a projection of the reference cell's batch mean, so
        the likelihood still accounts for them. Batches then must come with every packed batch.
    """

    def __init__(
        self,
        n_genes: int,
        n_cell_types: int,
        d_model: int = 384,
        n_heads: int = 8,
        n_encoder_layers: int = 4,
        n_decoder_layers: int = 4,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        attention: AttentionKind = "fast",
        checkpoint_activations: bool = False,
        batch_conditioned: bool = False,
    ):
        super().__init__()
        if attention not in ("fast", "dense"):
            raise ValueError(f"attention must be 'fast' or 'dense', got {attention!r}.")
        if d_model % 2 or d_model % n_heads:
            raise ValueError(
                f"d_model={d_model} must be even and divisible by n_heads={n_heads}: tokens join two "
                "halves of width d_model / 2 and every head gets d_model / n_heads channels."
            )
        half = d_model // 2
        self.n_genes = n_genes
        self.attention = attention
        self.cls_token = nn.Parameter(torch.empty(1, d_model))
        nn.init.normal_(self.cls_token, std=0.1)
        self.encoder_cell_embed = nn.Embedding(n_cell_types, half)
        self.expression_projection = nn.Sequential(
            nn.Linear(n_genes, half),
            nn.LayerNorm(half, eps=LAYER_NORM_EPS),
            nn.GELU(),
            nn.Linear(half, half),
            nn.LayerNorm(half, eps=LAYER_NORM_EPS),
        )
        self.proj_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.encoder = TransformerStack(
            n_encoder_layers, d_model, n_heads, dim_feedforward, dropout, checkpoint_activations
        )
        self.attn_pool = AttentionPool(d_model, n_heads, dropout)
        self.decoder_cell_embed = nn.Embedding(n_cell_types, d_model)
        self.decoder = TransformerStack(
            n_decoder_layers, d_model, n_heads, dim_feedforward, dropout, checkpoint_activations
        )
        self.zinb_proj = ZINBHead(d_model, n_genes)
        # The ZINB likelihood never uses ``scale``: it stays as initialised, as in the published
        # model, and needs no gradient (distributed training refuses parameters without one).
        self.zinb_proj.scale.requires_grad_(False)
        self.batch_projection = nn.Linear(n_genes, d_model) if batch_conditioned else None

    def load_reference_state(self, reference_state: dict[str, torch.Tensor], freeze: bool = True) -> None:
        """Start from a trained module whose cell-type tables may hold fewer types.

        Rows of cell types that the reference did not know keep their fresh initialisation. With
        ``freeze`` only those rows are trained afterwards (scArches-style query training): every
        other parameter, and the reference rows of the cell-type tables, stay as they are.
        """
        state = self.state_dict()
        n_reference_types = len(reference_state[CELL_TYPE_TABLES[0]])
        for name, value in reference_state.items():
            if name in CELL_TYPE_TABLES:
                state[name][:n_reference_types] = value
            else:
                state[name] = value
        self.load_state_dict(state)
        if freeze:
            self._train_only_new_cell_types(n_reference_types)

    def _train_only_new_cell_types(self, n_reference_types: int) -> None:
        tables = [self.encoder_cell_embed.weight, self.decoder_cell_embed.weight]
        for parameter in self.parameters():
            parameter.requires_grad_(any(parameter is table for table in tables))

        def zero_reference_rows(gradient: torch.Tensor) -> torch.Tensor:
            gradient = gradient.clone()
            gradient[:n_reference_types] = 0
            return gradient

        for table in tables:
            table.register_hook(zero_reference_rows)
        # Weight decay would still move the reference rows; the training plan exempts these.
        self.row_frozen_parameters = tables

    def attention_backend(self, offsets: torch.Tensor) -> AttentionBackend:
        """The attention backend selected by :attr:`attention`, for one packed batch."""
        if self.attention == "dense":
            return DenseAttention(offsets)
        return PackedAttention(offsets)

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            "neighbor_counts": tensors[PACKED_KEYS.NEIGHBOR_COUNTS],
            "neighbor_types": tensors[PACKED_KEYS.NEIGHBOR_TYPES],
            "offsets": tensors[PACKED_KEYS.OFFSETS],
            "reference_types": tensors[PACKED_KEYS.REFERENCE_TYPES],
            "neighbor_batch_means": self._batch_means(tensors, PACKED_KEYS.NEIGHBOR_BATCHES),
        }

    def _batch_means(self, tensors: dict[str, torch.Tensor], batches_key: str) -> torch.Tensor | None:
        """Each cell's batch mean of ``log1p`` expression, for a batch-conditioned module."""
        if self.batch_projection is None:
            return None
        if PACKED_KEYS.BATCH_LOG_MEANS not in tensors:
            raise ValueError(
                "This model was set up with a batch_key, but the data came without batches; set the "
                "data up with the same batch_key (`CellTransformer.setup_anndata(adata, batch_key=...)`)."
            )
        return tensors[PACKED_KEYS.BATCH_LOG_MEANS][tensors[batches_key]]

    @auto_move_data
    def inference(
        self,
        neighbor_counts: torch.Tensor,
        neighbor_types: torch.Tensor,
        offsets: torch.Tensor,
        reference_types: torch.Tensor,
        neighbor_batch_means: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Encode, pool and decode a packed batch.

        Returns
        -------
        ``embedding``: decoder output at the pooled positions, ``(B, d_model)``, the
        neighbourhood representation of the published model; ``pooled``: the attention-pooled
        token before the decoder, which has not yet met the reference cell's type;
        ``decoded``: decoder output at the decoding positions.
        """
        n_neighborhoods = len(offsets) - 1
        backend = self.attention_backend(offsets)
        expression = torch.log1p(neighbor_counts)
        if neighbor_batch_means is not None:
            expression = expression - neighbor_batch_means
        tokens = torch.cat(
            [self.encoder_cell_embed(neighbor_types), self.expression_projection(expression)], dim=1
        )
        tokens = torch.cat([tokens, self.cls_token.expand(n_neighborhoods, -1)], dim=0)
        tokens = self.encoder(self.proj_norm(tokens), backend.encoder_self_attention)
        pooled = self.attn_pool(tokens, backend)
        decoder_tokens = torch.cat([pooled, self.decoder_cell_embed(reference_types)], dim=0)
        decoder_tokens = self.decoder(decoder_tokens, backend.decoder_self_attention)
        return {
            "embedding": decoder_tokens[:n_neighborhoods],
            "pooled": pooled,
            "decoded": decoder_tokens[n_neighborhoods:],
        }

    def _get_generative_input(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {
            "decoded": inference_outputs["decoded"],
            "reference_batch_means": self._batch_means(tensors, PACKED_KEYS.REFERENCE_BATCHES),
        }

    @auto_move_data
    def generative(
        self, decoded: torch.Tensor, reference_batch_means: torch.Tensor | None = None
    ) -> dict[str, ZeroInflatedNegativeBinomial]:
        """ZINB distribution of each reference cell's counts, computed in ``float32``."""
        with torch.autocast(device_type=decoded.device.type, enabled=False):
            decoded = decoded.float()
            if reference_batch_means is not None:
                decoded = decoded + self.batch_projection(reference_batch_means)
            parameters = self.zinb_proj(decoded)
        return {"px": ZeroInflatedNegativeBinomial(**parameters)}

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, torch.Tensor],
        generative_outputs: dict[str, ZeroInflatedNegativeBinomial],
    ) -> LossOutput:
        """Negative log-likelihood of the reference counts, averaged over genes and cells.

        ``extra_metrics["pearson"]`` is the mean over cells of the Pearson correlation between
        the predicted mean and the observed counts (cells with constant counts left out).
        """
        counts = tensors[PACKED_KEYS.REFERENCE_COUNTS].float()
        px = generative_outputs["px"]
        nll_per_cell = -px.log_prob(counts).mean(dim=1)
        with torch.no_grad():
            pearson = torch.nanmean(per_cell_pearson(px.mean, counts))
        return LossOutput(
            loss=nll_per_cell.mean(),
            reconstruction_loss=nll_per_cell,
            n_obs_minibatch=len(counts),
            extra_metrics={"pearson": pearson},
        )

    @torch.inference_mode()
    def sample(self, tensors: dict[str, torch.Tensor], n_samples: int = 1) -> torch.Tensor:
        """Draw counts of the reference cells from the predicted ZINB, ``(n_samples, B, G)``."""
        _, generative_outputs = self.forward(tensors, compute_loss=False)
        return generative_outputs["px"].sample((n_samples,)).cpu()

"""Loading checkpoints of the published training code, checked against a reference of that network.

The checkpoint is synthetic: random tensors in the released layout (``fixtures/``), saved the way
Lightning saves them. The reference below is written from the description of the published network
with plain torch modules and the dense masks of the packed format.
"""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import squidpy as sq
import torch
from conftest import QUIET_TRAINING
from lightning.fabric.utilities.data import AttributeDict
from torch import nn

import celltransformer as ct

LAYOUT = json.loads((Path(__file__).parent / "fixtures" / "published_checkpoint_layout.json").read_text())
N_TABLE_ROWS = 384
DATA_TYPE_POSITIONS = {f"type_{t}": p for t, p in enumerate([311, 7, 250, 42, 199, 3, 120, 383, 64, 177])}
CELL_TYPE_ORDER = [f"published_type_{row:03d}" for row in range(N_TABLE_ROWS)]
for name, position in DATA_TYPE_POSITIONS.items():
    CELL_TYPE_ORDER[position] = name
POOL_NAMES = {  # published name: our name
    "attn_pool.query_token": "attn_pool.query",
    "attn_pool.norm.weight": "attn_pool.query_norm.weight",
    "attn_pool.norm.bias": "attn_pool.query_norm.bias",
    "attn_pool.norm_v.weight": "attn_pool.key_norm.weight",
    "attn_pool.norm_v.bias": "attn_pool.key_norm.bias",
    "attn_pool.norm_k.weight": "attn_pool.value_norm.weight",
    "attn_pool.norm_k.bias": "attn_pool.value_norm.bias",
    "attn_pool.norm2.weight": "attn_pool.output_norm.weight",
    "attn_pool.norm2.bias": "attn_pool.output_norm.bias",
}
CELL_TYPE_TABLES = ("encoder_cell_embed.weight", "decoder_cell_embed.weight")
SUBSET = np.arange(32)


# --- a reference implementation of the published network -------------------------------------------


def published_transformer(d_model: int, n_heads: int, dim_feedforward: int, n_layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout=0.0, activation="gelu")
    layer.self_attn = nn.MultiheadAttention(d_model, n_heads, add_zero_attn=True)
    return nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)


class PublishedAttentionPool(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.query_token = nn.Parameter(torch.zeros(1, d_model))
        self.attn = nn.MultiheadAttention(d_model, n_heads, bias=False, add_bias_kv=True, add_zero_attn=True)
        self.norm = nn.LayerNorm(d_model)
        self.norm_v = nn.LayerNorm(d_model)
        self.norm_k = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, pooling_mask: torch.Tensor) -> torch.Tensor:
        query = self.norm(self.query_token).expand(len(pooling_mask), -1)
        pooled = self.attn(query, self.norm_v(x), self.norm_k(x), attn_mask=pooling_mask)[0]
        return self.norm2(pooled)


class PublishedZINBProjection(nn.Module):
    def __init__(self, d_model: int, n_genes: int, eps: float = 1e-15):
        super().__init__()
        self.mu = nn.Linear(d_model, n_genes)
        self.theta = nn.Linear(d_model, n_genes)
        self.scale = nn.Linear(d_model, n_genes)
        self.gate_logit = nn.Linear(d_model, n_genes)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "mu": self.mu(x).exp() + self.eps,
            "theta": self.theta(x).exp() + self.eps,
            "zi_logits": self.gate_logit(x),
            "scale": self.scale(x).exp() + self.eps,
        }


class PublishedNetwork(nn.Module):
    def __init__(self, n_genes=500, n_cell_types=384, d_model=384, n_heads=8, n_layers=4, dim_feedforward=2048):
        super().__init__()
        half = d_model // 2
        self.cls_token = nn.Parameter(torch.zeros(1, d_model))
        self.pooling_token = nn.Parameter(torch.zeros(1, d_model))
        self.expression_projection = nn.Sequential(
            nn.Linear(n_genes, half), nn.LayerNorm(half), nn.GELU(), nn.Linear(half, half), nn.LayerNorm(half)
        )
        self.encoder_cell_embed = nn.Embedding(n_cell_types, half)
        self.proj_norm = nn.LayerNorm(d_model)
        self.encoder = published_transformer(d_model, n_heads, dim_feedforward, n_layers)
        self.attn_pool = PublishedAttentionPool(d_model, n_heads)
        self.decoder_cell_embed = nn.Embedding(n_cell_types, d_model)
        self.decoder = published_transformer(d_model, n_heads, dim_feedforward, n_layers)
        self.zinb_proj = PublishedZINBProjection(d_model, n_genes)

    def forward(self, log_expression, neighbor_types, reference_types, masks):
        """Embeddings (decoder output at the pooled positions) and ZINB parameters of a packed batch."""
        n_neighborhoods = len(reference_types)
        tokens = torch.cat([self.encoder_cell_embed(neighbor_types), self.expression_projection(log_expression)], 1)
        tokens = self.proj_norm(torch.cat([tokens, self.cls_token.expand(n_neighborhoods, -1)]))
        encoded = self.encoder(tokens, mask=masks.encoder)
        pooled = self.attn_pool(encoded, masks.pooling)
        decoded = self.decoder(torch.cat([pooled, self.decoder_cell_embed(reference_types)]), mask=masks.decoder)
        return decoded[:n_neighborhoods], self.zinb_proj(decoded[n_neighborhoods:])


# --- fixtures ------------------------------------------------------------------------------------------


def random_published_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the released layout, scaled so that activations stay moderate."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in LAYOUT.items():
        tensor = torch.randn(shape, generator=generator) / math.sqrt(shape[-1])
        is_layer_norm_scale = len(shape) == 1 and name.endswith("weight")
        state[name] = 1 + tensor if is_layer_norm_scale else tensor
    return state


def save_checkpoint(state: dict[str, torch.Tensor], path: Path, **extra) -> Path:
    torch.save({"state_dict": {"model." + name: tensor for name, tensor in state.items()}, **extra}, path)
    return path


def registered_tissue(cell_type_key="cell_type", n_genes=500, n_cells=300):
    adata = ct.datasets.synthetic_tissue(n_cells=n_cells, n_genes=n_genes, n_sections=1, seed=0)
    sq.gr.spatial_neighbors_radius(adata, radius=40.0, library_key="section")
    ct.CellTransformer.setup_anndata(adata, layer="counts", cell_type_key=cell_type_key, library_key="section")
    return adata


@pytest.fixture(scope="module")
def published_state():
    return random_published_state()


@pytest.fixture(scope="module")
def checkpoint(published_state, tmp_path_factory):
    return save_checkpoint(published_state, tmp_path_factory.mktemp("published") / "last.ckpt")


@pytest.fixture(scope="module")
def adata():
    return registered_tissue()


@pytest.fixture(scope="module")
def loaded(checkpoint, adata):
    return ct.CellTransformer.from_published_checkpoint(checkpoint, adata, cell_type_order=CELL_TYPE_ORDER)


def table_rows(model) -> list[int]:
    """Row of the published tables for each of the model's cell-type codes."""
    categories = model.adata_manager.get_state_registry("labels").categorical_mapping
    return [DATA_TYPE_POSITIONS[category] for category in categories]


def zinb_parameters(model, batch) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        outputs = model.module.inference(**model.module._get_inference_input(batch))
        px = model.module.generative(outputs["decoded"])["px"]
    return {
        "embedding": outputs["embedding"],
        "mu": px.mu,
        "theta": px.theta,
        "zi_logits": px.zi_logits,
        "scale": px.scale,
    }


# --- tests ---------------------------------------------------------------------------------------------


def test_every_checkpoint_tensor_lands_in_the_model(loaded, published_state):
    module_state = loaded.module.state_dict()
    assert loaded.is_trained
    assert len(module_state) == len(published_state) - 1  # all but the unused pooling_token
    rows = table_rows(loaded)
    for name, tensor in published_state.items():
        if name == "pooling_token":
            continue
        expected = tensor[rows] if name in CELL_TYPE_TABLES else tensor
        assert torch.equal(module_state[POOL_NAMES.get(name, name)], expected), name
    # The published pool normalises keys with norm_v and values with norm_k.
    assert torch.equal(loaded.module.attn_pool.key_norm.weight, published_state["attn_pool.norm_v.weight"])
    assert torch.equal(loaded.module.attn_pool.value_norm.weight, published_state["attn_pool.norm_k.weight"])


def test_outputs_are_finite_and_deterministic(loaded, adata):
    latent = loaded.get_latent_representation(indices=SUBSET, batch_size=16)
    assert latent.shape == (len(SUBSET), 384)
    assert np.isfinite(latent).all()
    np.testing.assert_array_equal(latent, loaded.get_latent_representation(indices=SUBSET, batch_size=16))
    batch = ct.data.pack_batch(adata, SUBSET[:16])
    first, second = zinb_parameters(loaded, batch), zinb_parameters(loaded, batch)
    for name, values in first.items():
        assert torch.isfinite(values).all(), name
        assert torch.equal(values, second[name]), name


def test_fast_and_dense_attention_agree_on_loaded_weights(loaded, checkpoint, adata):
    dense = ct.CellTransformer.from_published_checkpoint(
        checkpoint, adata, cell_type_order=CELL_TYPE_ORDER, attention="dense"
    )
    batch = ct.data.pack_batch(adata, SUBSET[:24])
    fast_outputs, dense_outputs = zinb_parameters(loaded, batch), zinb_parameters(dense, batch)
    for name, values in fast_outputs.items():
        assert (values - dense_outputs[name]).abs().max() <= 1e-4, name


def test_loaded_model_reproduces_the_published_network(loaded, published_state, adata):
    reference = PublishedNetwork().eval()
    reference.load_state_dict(published_state, strict=True)
    batch = ct.data.pack_batch(adata, SUBSET[:24])
    training_codes = torch.tensor(table_rows(loaded))
    masks = ct.data.attention_masks(batch["offsets"])
    with torch.inference_mode():
        embedding, zinb = reference(
            torch.log1p(batch["neighbor_counts"]),
            training_codes[batch["neighbor_types"]],
            training_codes[batch["reference_types"]],
            masks,
        )
    ours = zinb_parameters(loaded, batch)
    torch.testing.assert_close(ours["embedding"], embedding, rtol=0, atol=1e-4)
    for name, values in zinb.items():
        torch.testing.assert_close(ours[name], values, rtol=1e-4, atol=1e-4)


def _without(name):
    def edit(state):
        del state[name]

    return edit


def _replace(name, shape):
    def edit(state):
        state[name] = torch.zeros(shape)

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_without("decoder.layers.3.linear2.bias"), r"lacks 1 parameters.*decoder\.layers\.3\.linear2\.bias"),
        (_without("attn_pool.norm_k.weight"), r"lacks 1 parameters.*attn_pool\.norm_k\.weight"),
        (_replace("attn_pool.attn.bias_k", (1, 384)), r"attn_pool\.attn\.bias_k: \(1, 384\) in the checkpoint"),
        (_replace("spatial_head.weight", (3, 384)), r"parameters that the published network does not.*spatial_head"),
    ],
    ids=["missing", "missing-pool-norm", "misshaped", "unexpected"],
)
def test_checkpoint_not_matching_the_network_is_named(published_state, adata, tmp_path, edit, match):
    state = dict(published_state)
    edit(state)
    path = save_checkpoint(state, tmp_path / "edited.ckpt")
    with pytest.raises(ValueError, match=match):
        ct.CellTransformer.from_published_checkpoint(path, adata, cell_type_order=CELL_TYPE_ORDER)


def test_other_gene_panel_is_refused(checkpoint):
    with pytest.raises(ValueError, match=r"trained on 500 genes, but adata has 480.*adata\[:, panel_genes\]"):
        ct.CellTransformer.from_published_checkpoint(
            checkpoint, registered_tissue(n_genes=480), cell_type_order=CELL_TYPE_ORDER
        )


def test_cell_types_without_code_are_listed(checkpoint, adata):
    order = [name for name in CELL_TYPE_ORDER if name not in ("type_3", "type_7")]
    with pytest.raises(ValueError, match=r"2 cell types of adata have no code.*'type_3', 'type_7'"):
        ct.CellTransformer.from_published_checkpoint(checkpoint, adata, cell_type_order=order)


def test_cell_type_order_longer_than_the_tables_is_refused(checkpoint, adata):
    with pytest.raises(ValueError, match="385 names, but the checkpoint's cell-type tables have only 384 rows"):
        ct.CellTransformer.from_published_checkpoint(checkpoint, adata, cell_type_order=[*CELL_TYPE_ORDER, "extra"])


def test_data_without_cell_types_is_refused(checkpoint):
    with pytest.raises(ValueError, match="set up without them.*cell_type_key"):
        ct.CellTransformer.from_published_checkpoint(checkpoint, registered_tissue(cell_type_key=None))


def test_missing_cell_type_order_means_sorted_types_and_warns(checkpoint, adata, published_state):
    with pytest.warns(UserWarning, match="cell_type_order is None.*only if training used exactly these labels"):
        model = ct.CellTransformer.from_published_checkpoint(checkpoint, adata)
    categories = list(model.adata_manager.get_state_registry("labels").categorical_mapping)
    rows = [sorted(categories).index(category) for category in categories]
    table = published_state["decoder_cell_embed.weight"]
    assert torch.equal(model.module.decoder_cell_embed.weight, table[rows])


def test_lightning_checkpoint_with_python_objects_loads_with_a_warning(published_state, adata, tmp_path):
    path = save_checkpoint(published_state, tmp_path / "full.ckpt", hyper_parameters=AttributeDict(lr=1e-4))
    with pytest.warns(UserWarning, match="weights_only=False"):
        model = ct.CellTransformer.from_published_checkpoint(path, adata, cell_type_order=CELL_TYPE_ORDER)
    assert torch.equal(model.module.cls_token, published_state["cls_token"])


def test_file_without_a_state_dict_is_refused(adata, tmp_path):
    torch.save({"epoch": 3}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not a checkpoint of the published CellTransformer code"):
        ct.CellTransformer.from_published_checkpoint(tmp_path / "other.ckpt", adata)


def test_fine_tuning_from_loaded_weights_changes_them(checkpoint):
    small_tissue = registered_tissue(n_cells=120)
    model = ct.CellTransformer.from_published_checkpoint(
        checkpoint, small_tissue, cell_type_order=CELL_TYPE_ORDER, max_neighbors=8
    )
    before = copy.deepcopy(model.module.state_dict())
    model.train(max_epochs=1, batch_size=16, train_size=0.25, plan_kwargs={"warmup_steps": 5}, **QUIET_TRAINING)
    after = model.module.state_dict()
    assert np.isfinite(model.history["nll_train"].to_numpy(dtype=float)).all()
    assert not torch.equal(before["zinb_proj.mu.weight"], after["zinb_proj.mu.weight"])
    assert not torch.equal(before["encoder.layers.0.linear1.weight"], after["encoder.layers.0.linear1.weight"])

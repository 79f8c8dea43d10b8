"""The network: torch semantics, the fast and dense attention paths, initialisation, likelihood."""

import math

import numpy as np
import pytest
import torch
from scvi.distributions import ZeroInflatedNegativeBinomial
from torch import nn

from celltransformer.data import attention_masks
from celltransformer.model import inverse_sqrt_with_plateau
from celltransformer.nn import CellTransformerModule, DenseAttention, TransformerLayer


def random_batch(sizes, n_genes=30, n_types=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)]), dtype=torch.long)
    n_cells, n_neighborhoods = int(offsets[-1]), len(sizes)
    return {
        "neighbor_counts": torch.poisson(3 * torch.rand(n_cells, n_genes, generator=generator), generator=generator),
        "neighbor_types": torch.randint(0, n_types, (n_cells,), generator=generator),
        "reference_counts": torch.poisson(3 * torch.rand(n_neighborhoods, n_genes, generator=generator), generator=generator),
        "reference_types": torch.randint(0, n_types, (n_neighborhoods,), generator=generator),
        "offsets": offsets,
    }


def test_layer_has_the_semantics_of_torch_transformer_encoder_layer():
    torch.manual_seed(0)
    layer = TransformerLayer(d_model=16, n_heads=4, dim_feedforward=32, dropout=0.0)
    reference = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu")
    reference.self_attn = nn.MultiheadAttention(16, 4, dropout=0.0, add_zero_attn=True)
    reference.load_state_dict(layer.state_dict())
    offsets = torch.tensor([0, 3, 3, 7])
    masks = attention_masks(offsets)
    x = torch.randn(10, 16)
    expected = reference(x, src_mask=masks.encoder)
    actual = layer(x, DenseAttention(offsets).encoder_self_attention)
    torch.testing.assert_close(actual, expected)


def test_transformer_weights_are_xavier_normal_and_biases_zero():
    torch.manual_seed(0)
    layer = TransformerLayer(d_model=384, n_heads=8, dim_feedforward=2048, dropout=0.0)
    for name in ("linear1.bias", "linear2.bias", "self_attn.in_proj_bias", "self_attn.out_proj.bias"):
        assert torch.count_nonzero(dict(layer.named_parameters())[name]) == 0
    weight = layer.linear1.weight
    xavier_std = math.sqrt(2.0 / (weight.shape[0] + weight.shape[1]))
    assert abs(weight.std().item() - xavier_std) / xavier_std < 0.02
    module = CellTransformerModule(n_genes=10, n_cell_types=3)
    assert abs(module.cls_token.std().item() - 0.1) < 0.03
    assert abs(module.attn_pool.query.std().item() - 0.02) < 0.006


def test_published_defaults():
    module = CellTransformerModule(n_genes=500, n_cell_types=10)
    assert module.cls_token.shape == (1, 384)
    assert module.encoder_cell_embed.weight.shape == (10, 192)
    assert module.expression_projection[0].weight.shape == (192, 500)
    assert len(module.encoder.layers) == 4 and len(module.decoder.layers) == 4
    attn = module.encoder.layers[0].self_attn
    assert attn.num_heads == 8 and attn.add_zero_attn and attn.in_proj_bias is not None
    assert module.encoder.layers[0].linear1.out_features == 2048
    pool = module.attn_pool.attn
    assert pool.in_proj_bias is None and pool.bias_k is not None and pool.add_zero_attn
    assert module.decoder_cell_embed.weight.shape == (10, 384)
    assert module.zinb_proj.mu.out_features == 500


SIZE_CASES = {
    "mixed with empty and one-cell": [3, 0, 1, 7, 0, 12, 1],
    "all empty": [0, 0, 0],
    "single cell": [1],
    "capped at 250": [250, 3, 250, 0, 41],
}


@pytest.mark.parametrize("case", list(SIZE_CASES))
def test_fast_and_dense_paths_agree_on_outputs_and_gradients(case):
    torch.manual_seed(0)
    module = CellTransformerModule(
        n_genes=30, n_cell_types=5, d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2,
        dim_feedforward=64,
    )
    batch = random_batch(SIZE_CASES[case])
    results = {}
    for attention in ("dense", "fast"):
        module.attention = attention
        module.zero_grad()
        inference, generative, loss = module(batch)
        loss.loss.backward()
        gradients = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
        results[attention] = (inference["embedding"].detach(), generative["px"].mu.detach(), loss.loss.detach(), gradients)
    dense, fast = results["dense"], results["fast"]
    for dense_value, fast_value in zip(dense[:3], fast[:3], strict=True):
        assert (dense_value - fast_value).abs().max() <= 1e-4
    assert dense[3].keys() == fast[3].keys()
    for name in dense[3]:
        assert (dense[3][name] - fast[3][name]).abs().max() <= 1e-4, name


def test_loss_is_the_zinb_nll_averaged_over_genes_and_cells():
    torch.manual_seed(0)
    module = CellTransformerModule(n_genes=30, n_cell_types=5, d_model=32, n_heads=4, n_encoder_layers=1,
                                   n_decoder_layers=1, dim_feedforward=64)
    batch = random_batch([4, 2, 0])
    inference, generative, loss = module(batch)
    parameters = module.zinb_proj(inference["decoded"])
    expected = -ZeroInflatedNegativeBinomial(**parameters).log_prob(batch["reference_counts"]).mean()
    torch.testing.assert_close(loss.loss, expected)
    assert loss.reconstruction_loss["reconstruction_loss"].shape == (3,)
    assert -1.0 <= loss.extra_metrics["pearson"] <= 1.0


def test_without_cell_types_a_single_learned_type_vector_serves_all_cells():
    module = CellTransformerModule(n_genes=30, n_cell_types=1, d_model=32, n_heads=4, n_encoder_layers=1,
                                   n_decoder_layers=1, dim_feedforward=64)
    batch = random_batch([4, 2], n_types=1)
    _, _, loss = module(batch)
    loss.loss.backward()
    assert module.decoder_cell_embed.weight.grad.abs().sum() > 0


def test_schedule_warms_up_plateaus_and_decays():
    factor = inverse_sqrt_with_plateau(warmup_steps=500, plateau_steps=50, timescale=5000)
    assert factor(0) == pytest.approx(1 / 500)
    assert factor(249) == pytest.approx(0.5)
    assert factor(499) == factor(500) == factor(549) == 1.0
    assert factor(550 + 15000) == pytest.approx(0.5)
    assert factor(10_000) < factor(5_000) < 1.0


def test_activation_checkpointing_changes_memory_not_numbers():
    torch.manual_seed(0)
    module = CellTransformerModule(n_genes=30, n_cell_types=5, d_model=32, n_heads=4, n_encoder_layers=2,
                                   n_decoder_layers=2, dim_feedforward=64)
    batch = random_batch([5, 0, 9, 1])
    gradients = []
    for checkpointed in (False, True):
        module.encoder.checkpoint_activations = module.decoder.checkpoint_activations = checkpointed
        module.zero_grad()
        module(batch)[2].loss.backward()
        gradients.append({name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None})
    assert gradients[0].keys() == gradients[1].keys()
    for name in gradients[0]:
        torch.testing.assert_close(gradients[0][name], gradients[1][name], rtol=0, atol=1e-6)


def test_mixed_precision_runs_attention_in_bf16_and_the_likelihood_in_fp32():
    torch.manual_seed(0)
    module = CellTransformerModule(n_genes=30, n_cell_types=5, d_model=32, n_heads=4, n_encoder_layers=2,
                                   n_decoder_layers=2, dim_feedforward=64)
    batch = random_batch([5, 0, 9, 1, 30])
    reference = module(batch)[0]["embedding"]
    seen = []
    module.encoder.layers[0].linear1.register_forward_hook(lambda layer, inputs, output: seen.append(output.dtype))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        inference, generative, loss = module(batch)
    assert seen == [torch.bfloat16]
    assert generative["px"].mu.dtype == torch.float32 and loss.loss.dtype == torch.float32
    assert torch.isfinite(loss.loss)
    torch.testing.assert_close(inference["embedding"].float(), reference, rtol=0.1, atol=0.1)

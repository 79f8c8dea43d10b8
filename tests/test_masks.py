"""The three attention masks of the packed format."""

import numpy as np
import pytest
import torch

from celltransformer.data import attention_masks

# Neighbourhood sizes (3, 0, 2): cells 0-2 belong to neighbourhood 0, cells 3-4 to neighbourhood 2,
# tokens 5, 6, 7 are the <cls> tokens of neighbourhoods 0, 1, 2. 1 = may attend.
ENCODER_OPEN = [
    [1, 1, 1, 0, 0, 1, 0, 0],
    [1, 1, 1, 0, 0, 1, 0, 0],
    [1, 1, 1, 0, 0, 1, 0, 0],
    [0, 0, 0, 1, 1, 0, 0, 1],
    [0, 0, 0, 1, 1, 0, 0, 1],
    [1, 1, 1, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 1, 1, 0, 0, 1],
]
POOLING_OPEN = [
    [1, 1, 1, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 1, 1, 0, 0, 0],
]
DECODER_OPEN = [
    [0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 1],
    [1, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 0],
    [0, 0, 1, 0, 0, 0],
]


def test_hand_built_batch_entry_by_entry():
    masks = attention_masks(torch.tensor([0, 3, 3, 5]))
    assert masks.encoder.dtype == torch.bool
    np.testing.assert_array_equal(~masks.encoder.numpy(), np.array(ENCODER_OPEN, dtype=bool))
    np.testing.assert_array_equal(~masks.pooling.numpy(), np.array(POOLING_OPEN, dtype=bool))
    np.testing.assert_array_equal(~masks.decoder.numpy(), np.array(DECODER_OPEN, dtype=bool))


@pytest.mark.parametrize("seed", range(5))
def test_random_batches_have_the_block_structure(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 12, size=rng.integers(1, 9))
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)]))
    n_cells, n_neighborhoods = int(offsets[-1]), len(sizes)
    masks = attention_masks(offsets)
    assert masks.encoder.shape == (n_cells + n_neighborhoods,) * 2
    assert masks.pooling.shape == (n_neighborhoods, n_cells + n_neighborhoods)
    assert masks.decoder.shape == (2 * n_neighborhoods,) * 2

    encoder_open = ~masks.encoder
    assert torch.equal(encoder_open, encoder_open.T)
    for i, (start, stop) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)):
        cls = n_cells + i
        expected = torch.zeros(n_cells + n_neighborhoods, dtype=torch.bool)
        expected[start:stop] = True
        expected[cls] = True
        assert torch.equal(encoder_open[cls], expected)
        for cell in range(start, stop):
            assert torch.equal(encoder_open[cell], expected)
        pooling_expected = expected.clone()
        pooling_expected[cls] = False
        assert torch.equal(~masks.pooling[i], pooling_expected)
    decoder_open = ~masks.decoder
    assert int(decoder_open.sum()) == 2 * n_neighborhoods
    assert not decoder_open.diagonal().any()
    for i in range(n_neighborhoods):
        assert decoder_open[i, n_neighborhoods + i] and decoder_open[n_neighborhoods + i, i]

"""Property tests of the packed format: for random graphs and neighbourhoods of 0 to 300 cells,
the packed tensors and the masks have their documented structure, and the fast and dense
attention paths agree."""

from functools import cache

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from celltransformer.data import ExpressionMatrix, NeighborhoodGraph, attention_masks, pack_neighborhoods
from celltransformer.nn import CellTransformerModule

N_OBS, N_GENES, N_TYPES = 320, 5, 4
MAX_SIZE = 300
SETTINGS = settings(max_examples=30, deadline=None)

sizes_strategy = st.lists(st.integers(0, MAX_SIZE), min_size=1, max_size=6)


@st.composite
def graphs_and_batches(draw):
    """A random graph in which the drawn reference cells have the drawn numbers of neighbours.

    The adjacency may hold self-loops and stored zeros, which are not edges.
    """
    sizes = draw(sizes_strategy)
    cells = st.integers(0, N_OBS - 1)
    references = np.array(draw(st.lists(cells, min_size=len(sizes), max_size=len(sizes), unique=True)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows, columns = [], []
    for reference, size in zip(references, sizes, strict=True):
        others = np.delete(np.arange(N_OBS), reference)
        rows.append(np.full(size, reference))
        columns.append(rng.choice(others, size, replace=False))
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    values = np.ones(len(rows))
    if draw(st.booleans()):
        rows, columns = np.append(rows, references), np.append(columns, references)
        values = np.append(values, np.ones(len(references)))
    if draw(st.booleans()):
        stored_zeros = rng.integers(0, N_OBS, size=(2, 10))
        rows, columns = np.append(rows, stored_zeros[0]), np.append(columns, stored_zeros[1])
        values = np.append(values, np.zeros(10))
    adjacency = sparse.csr_matrix((values, (rows, columns)), shape=(N_OBS, N_OBS))
    adjacency.sum_duplicates()
    counts = rng.poisson(2.0, size=(N_OBS, N_GENES)).astype(np.float32)
    cell_types = rng.integers(0, N_TYPES, size=N_OBS)
    max_neighbors = draw(st.one_of(st.none(), st.integers(1, MAX_SIZE)))
    seed = draw(st.one_of(st.none(), st.integers(0, 1000)))
    return adjacency, counts, cell_types, references, max_neighbors, seed


def edges_of(adjacency: sparse.csr_matrix, cell: int) -> np.ndarray:
    """The graph neighbours of ``cell``: stored non-zeros off the diagonal, in column order."""
    row = adjacency[cell]
    return np.sort(row.indices[(row.data != 0) & (row.indices != cell)])


def pack(adjacency, counts, cell_types, references, max_neighbors, seed):
    graph = NeighborhoodGraph.from_adjacency(adjacency)
    rng = None if seed is None else np.random.default_rng(seed)
    return pack_neighborhoods(ExpressionMatrix(counts), cell_types, graph, references, max_neighbors, rng)


@SETTINGS
@given(graphs_and_batches())
def test_packed_batches_follow_the_documented_layout(case):
    adjacency, counts, cell_types, references, max_neighbors, seed = case
    batch = pack(*case)
    offsets = batch["offsets"].numpy()
    neighbors = batch["neighbor_indices"].numpy()
    n_cells, n_neighborhoods = len(neighbors), len(references)

    assert batch["neighbor_counts"].dtype == batch["reference_counts"].dtype == torch.float32
    for key in ("neighbor_types", "neighbor_indices", "reference_types", "reference_indices", "offsets"):
        assert batch[key].dtype == torch.int64, key
    assert offsets.shape == (n_neighborhoods + 1,) and offsets[0] == 0 and offsets[-1] == n_cells
    np.testing.assert_array_equal(batch["neighbor_counts"].numpy(), counts[neighbors])
    np.testing.assert_array_equal(batch["neighbor_types"].numpy(), cell_types[neighbors])
    np.testing.assert_array_equal(batch["reference_counts"].numpy(), counts[references])
    np.testing.assert_array_equal(batch["reference_types"].numpy(), cell_types[references])
    np.testing.assert_array_equal(batch["reference_indices"].numpy(), references)

    cap = MAX_SIZE + 1 if max_neighbors is None else max_neighbors
    for i, reference in enumerate(references):
        edges = edges_of(adjacency, reference)
        mine = neighbors[offsets[i] : offsets[i + 1]]
        assert len(mine) == min(len(edges), cap)
        if len(edges) <= cap:
            np.testing.assert_array_equal(mine, edges)
        else:
            assert len(np.unique(mine)) == len(mine) and np.isin(mine, edges).all()


@SETTINGS
@given(graphs_and_batches())
def test_an_inference_cap_picks_the_same_neighbors_whatever_the_batch(case):
    adjacency, counts, cell_types, references, max_neighbors, _ = case
    batch = pack(adjacency, counts, cell_types, references, max_neighbors, seed=None)
    offsets = batch["offsets"].numpy()
    for i, reference in enumerate(references):
        alone = pack(adjacency, counts, cell_types, np.array([reference]), max_neighbors, seed=None)
        np.testing.assert_array_equal(
            alone["neighbor_indices"].numpy(), batch["neighbor_indices"].numpy()[offsets[i] : offsets[i + 1]]
        )


def expected_open_masks(sizes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where attention is allowed, built block by block from the docstrings of ``AttentionMasks``."""
    n_neighborhoods, n_cells = len(sizes), sum(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    encoder = np.zeros((n_cells + n_neighborhoods,) * 2, dtype=bool)
    pooling = np.zeros((n_neighborhoods, n_cells + n_neighborhoods), dtype=bool)
    decoder = np.zeros((2 * n_neighborhoods,) * 2, dtype=bool)
    for i in range(n_neighborhoods):
        tokens = [*range(starts[i], starts[i + 1]), n_cells + i]
        encoder[np.ix_(tokens, tokens)] = True
        pooling[i, starts[i] : starts[i + 1]] = True
        decoder[i, n_neighborhoods + i] = decoder[n_neighborhoods + i, i] = True
    return encoder, pooling, decoder


@settings(max_examples=40, deadline=None)
@given(sizes_strategy)
def test_masks_follow_the_documented_structure(sizes):
    masks = attention_masks(torch.tensor(np.concatenate([[0], np.cumsum(sizes)])))
    for mask, expected_open in zip(masks, expected_open_masks(sizes), strict=True):
        assert mask.dtype == torch.bool
        np.testing.assert_array_equal(~mask.numpy(), expected_open)


@cache
def tiny_module() -> CellTransformerModule:
    torch.manual_seed(0)
    return CellTransformerModule(
        n_genes=N_GENES, n_cell_types=N_TYPES, d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1,
        dim_feedforward=32,
    )


@settings(max_examples=20, deadline=None)
@given(graphs_and_batches())
def test_fast_and_dense_attention_paths_agree(case):
    batch = pack(*case)
    module = tiny_module()
    outputs = {}
    for attention in ("fast", "dense"):
        module.attention = attention
        with torch.no_grad():
            inference, _, loss = module(batch)
        outputs[attention] = (inference["embedding"], inference["decoded"], loss.loss)
    for fast, dense in zip(outputs["fast"], outputs["dense"], strict=True):
        torch.testing.assert_close(fast, dense, rtol=1e-4, atol=1e-4)

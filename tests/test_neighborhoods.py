"""Neighbourhood sampling and packing."""

import numpy as np
import pytest
import torch
from scipy import sparse

from celltransformer.data import ExpressionMatrix, NeighborhoodGraph, pack_neighborhoods
from celltransformer.data._validation import validate_sections


def _random_graph(n_obs, density, seed):
    graph = sparse.random(n_obs, n_obs, density=density, random_state=seed, format="csr")
    graph.data[:] = 1.0
    return graph


def test_self_loops_and_stored_zeros_are_not_edges():
    dense = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    adjacency = sparse.csr_matrix(dense)
    adjacency[0, 2] = 0.0  # a stored zero
    graph = NeighborhoodGraph.from_adjacency(adjacency)
    neighbors, offsets = graph.neighborhoods(np.array([0, 1, 2]))
    assert offsets.tolist() == [0, 1, 3, 4]
    assert neighbors.tolist() == [1, 0, 2, 1]


def test_clean_csr_graph_is_used_without_copy(tissue):
    adjacency = tissue.obsp["spatial_connectivities"]
    graph = NeighborhoodGraph.from_adjacency(adjacency)
    assert np.shares_memory(graph.indices, adjacency.indices)


def test_neighbors_are_graph_neighbors_never_the_cell_nor_other_sections(tissue):
    adjacency = tissue.obsp["spatial_connectivities"].tolil()
    adjacency.setdiag(1.0)  # squidpy's set_diag=True: the cell must still not be its own neighbour
    graph = NeighborhoodGraph.from_adjacency(adjacency.tocsr())
    sections = tissue.obs["section"].to_numpy()
    references = np.arange(tissue.n_obs)
    neighbors, offsets = graph.neighborhoods(references)
    csr = tissue.obsp["spatial_connectivities"]
    for i in references:
        mine = neighbors[offsets[i] : offsets[i + 1]]
        assert i not in mine
        assert set(mine) == set(csr.indices[csr.indptr[i] : csr.indptr[i + 1]])
        assert (sections[mine] == sections[i]).all()


@pytest.mark.parametrize("max_neighbors", [1, 3, 10])
def test_cap_holds_and_picks_from_the_neighbors(max_neighbors):
    adjacency = _random_graph(200, 0.1, seed=0)
    graph = NeighborhoodGraph.from_adjacency(adjacency)
    references = np.arange(200)
    for rng in (None, np.random.default_rng(0)):
        neighbors, offsets = graph.neighborhoods(references, max_neighbors, rng)
        sizes = np.diff(offsets)
        np.testing.assert_array_equal(sizes, np.minimum(graph.degrees, max_neighbors))
        for i in references:
            full = set(graph.indices[graph.indptr[i] : graph.indptr[i + 1]])
            mine = neighbors[offsets[i] : offsets[i + 1]]
            assert len(set(mine)) == len(mine) and set(mine) <= full


def test_inference_cap_picks_the_same_neighbors_whatever_the_batch():
    graph = NeighborhoodGraph.from_adjacency(_random_graph(300, 0.1, seed=1))
    alone, alone_offsets = graph.neighborhoods(np.array([7]), max_neighbors=5)
    batch, offsets = graph.neighborhoods(np.array([3, 7, 11]), max_neighbors=5)
    assert alone.tolist() == batch[offsets[1] : offsets[2]].tolist()
    again, _ = graph.neighborhoods(np.array([3, 7, 11]), max_neighbors=5)
    np.testing.assert_array_equal(batch, again)


def test_training_cap_resamples():
    graph = NeighborhoodGraph.from_adjacency(_random_graph(300, 0.2, seed=2))
    rng = np.random.default_rng(0)
    draws = {tuple(graph.neighborhoods(np.array([5]), 4, rng)[0]) for _ in range(20)}
    assert len(draws) > 1


def test_empty_neighborhoods_pack_to_empty_spans():
    adjacency = sparse.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float))
    graph = NeighborhoodGraph.from_adjacency(adjacency)
    neighbors, offsets = graph.neighborhoods(np.array([2, 0, 2]))
    assert offsets.tolist() == [0, 0, 1, 1]
    assert neighbors.tolist() == [1]


@pytest.mark.parametrize("layout", ["dense", "csr", "csc"])
def test_packing_gathers_the_right_rows(layout):
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(50, 7)).astype(np.float32)
    matrix = {"dense": counts, "csr": sparse.csr_matrix(counts), "csc": sparse.csc_matrix(counts)}[layout]
    types = rng.integers(0, 4, size=50)
    graph = NeighborhoodGraph.from_adjacency(_random_graph(50, 0.2, seed=3))
    references = np.array([4, 0, 17])
    batch = pack_neighborhoods(ExpressionMatrix(matrix), types, graph, references)
    neighbors = batch["neighbor_indices"].numpy()
    np.testing.assert_array_equal(batch["neighbor_counts"].numpy(), counts[neighbors])
    np.testing.assert_array_equal(batch["neighbor_types"].numpy(), types[neighbors])
    np.testing.assert_array_equal(batch["reference_counts"].numpy(), counts[references])
    np.testing.assert_array_equal(batch["reference_types"].numpy(), types[references])
    assert batch["offsets"][-1] == len(neighbors)
    assert batch["neighbor_counts"].dtype == torch.float32


def test_log1p_input_is_turned_back_into_counts():
    counts = np.random.default_rng(0).poisson(3.0, size=(20, 5)).astype(np.float32)
    recovered = ExpressionMatrix(np.log1p(counts), is_log1p=True).gather(np.arange(20))
    np.testing.assert_allclose(recovered, counts, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("rows_per_block", [1, 3, 7, 100])
def test_section_check_counts_crossing_edges_in_every_block(rows_per_block):
    sections = np.repeat(["a", "b"], [4, 6])
    within = sparse.block_diag([np.ones((4, 4)), np.ones((6, 6))], format="csr")
    validate_sections(within, sections, "spatial_connectivities", "section", rows_per_block=rows_per_block)

    crossing = within.tolil()
    crossing[8, 1] = crossing[1, 8] = crossing[9, 0] = 1.0  # rows in the first and the last block
    with pytest.raises(ValueError, match=r"^3 edges .* link cells of different sections"):
        validate_sections(crossing.tocsr(), sections, "spatial_connectivities", "section", rows_per_block=rows_per_block)

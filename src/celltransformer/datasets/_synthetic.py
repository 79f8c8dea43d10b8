"""A simulated tissue with known spatial domains: the package's embedded default data."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

AREA_PER_CELL_UM2 = 150.0
N_BANDS = 4
N_PATCHES = 2
MARKERS_PER_TYPE = 6
DOMAIN_GENES = 4
NB_INVERSE_DISPERSION = 5.0
CELLS_PER_BLOCK = 50_000


def _layout(
    n_cells: int, n_sections: int, plane_spacing_um: float | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates, domain and section of every cell; in 3D the planes share one layout."""
    sizes = np.full(n_sections, n_cells // n_sections)
    sizes[: n_cells % n_sections] += 1
    shared_layout = rng.bit_generator.state if plane_spacing_um is not None else None
    coordinates, domains, sections = [], [], []
    for section, size in enumerate(sizes):
        area = sizes.max() * AREA_PER_CELL_UM2
        width = np.sqrt(area * 1.25)
        height = area / width
        xy = rng.uniform([0.0, 0.0], [width, height], size=(size, 2))
        layout_rng = rng
        if shared_layout is not None:
            layout_rng = np.random.default_rng()
            layout_rng.bit_generator.state = shared_layout
            xy = np.column_stack([xy, np.full(size, section * plane_spacing_um)])
        coordinates.append(xy)
        domains.append(_domain_of_cells(xy[:, :2], width, height, layout_rng))
        sections.append(np.full(size, section))
    return np.concatenate(coordinates), np.concatenate(domains), np.concatenate(sections)


def _counts(log_means: np.ndarray, rng: np.random.Generator) -> sparse.csr_matrix:
    """Negative-binomial counts (gamma-Poisson) around ``exp(log_means)`` times a size factor."""
    size_factors = rng.lognormal(0.0, 0.3, len(log_means))
    means = np.exp(log_means) * size_factors[:, None]
    rates = rng.gamma(NB_INVERSE_DISPERSION, means / NB_INVERSE_DISPERSION)
    return sparse.csr_matrix(rng.poisson(rates).astype(np.float32))


def _domain_of_cells(xy: np.ndarray, width: float, height: float, rng: np.random.Generator) -> np.ndarray:
    """Layered wavy bands along y, with round patches cut into them (the last domains)."""
    phase = rng.uniform(0, 2 * np.pi)
    wavelength = rng.uniform(0.8, 1.4) * width
    amplitude = 0.04 * height
    boundaries = np.linspace(0, height, N_BANDS + 1)[1:-1]
    shifted_y = xy[:, 1] - amplitude * np.sin(2 * np.pi * xy[:, 0] / wavelength + phase)
    domains = np.searchsorted(boundaries, shifted_y)
    radius = 0.12 * min(width, height)
    for patch in range(N_PATCHES):
        center = rng.uniform([radius, radius], [width - radius, height - radius])
        inside = np.linalg.norm(xy - center, axis=1) < radius
        domains[inside] = N_BANDS + patch
    return domains


def synthetic_tissue(
    n_cells: int = 6000,
    n_sections: int = 3,
    n_genes: int = 120,
    n_cell_types: int = 10,
    seed: int = 0,
    mean_count: float = 2.0,
    plane_spacing_um: float | None = None,
) -> AnnData:
    """Simulate tissue sections with spatial domains, cell types and negative-binomial counts.

    Every section is a rectangle of uniformly scattered cells (one per 150 square microns) split
    into four wavy layered bands, with two round patches cut into them: six domains in all, with
    boundaries that differ between sections. Each domain has its own mixture of cell types (a few
    dominant types over a shared background); each cell type has its own expression program
    (marker genes over a shared baseline) and each domain adds a mild program of its own. Counts
    are negative binomial around those means times a per-cell size factor. Counts are drawn in
    blocks of cells, so millions of cells need little memory beyond the result.

    Parameters
    ----------
    n_cells
        Total number of cells, split evenly over the sections.
    n_sections
        Number of tissue sections.
    n_genes
        Number of genes; must leave room for the marker genes of every cell type.
    n_cell_types
        Number of cell types.
    seed
        Seed of the simulation; the same seed gives the same tissue.
    mean_count
        Typical mean count of a gene outside its markers: lower values give sparser matrices
        (0.2 gives about 80% zeros, like a 500-gene MERFISH panel).
    plane_spacing_um
        Make a 3D tissue: the sections become parallel planes this far apart (serial sections
        registered in 3D), sharing one domain layout, and ``obsm["spatial"]`` holds x, y, z.

    Returns
    -------
    AnnData with raw counts in ``X`` and ``layers["counts"]`` (sparse), coordinates in microns
    in ``obsm["spatial"]``, and ``obs["cell_type"]``, ``obs["domain"]`` (the truth) and
    ``obs["section"]``.
    """
    if n_genes < n_cell_types * MARKERS_PER_TYPE + DOMAIN_GENES * (N_BANDS + N_PATCHES):
        raise ValueError(
            f"n_genes={n_genes} is too small for {n_cell_types} cell types: the simulation needs "
            f"{MARKERS_PER_TYPE} marker genes per type and {DOMAIN_GENES} genes per domain, i.e. "
            f"n_genes >= {n_cell_types * MARKERS_PER_TYPE + DOMAIN_GENES * (N_BANDS + N_PATCHES)}."
        )
    if n_cells < n_sections:
        raise ValueError(f"n_cells={n_cells} must be at least n_sections={n_sections}.")
    if mean_count <= 0:
        raise ValueError(f"mean_count must be positive, got {mean_count}.")
    rng = np.random.default_rng(seed)
    n_domains = N_BANDS + N_PATCHES

    composition = rng.dirichlet(np.full(n_cell_types, 0.3), size=n_domains)
    composition = 0.9 * composition + 0.1 / n_cell_types

    baseline = rng.normal(0.0, 0.8, n_genes) + np.log(mean_count)
    log_means = np.tile(baseline, (n_cell_types, 1))
    markers = rng.permutation(n_genes)
    for cell_type in range(n_cell_types):
        type_markers = markers[cell_type * MARKERS_PER_TYPE : (cell_type + 1) * MARKERS_PER_TYPE]
        log_means[cell_type, type_markers] += 2.0
    domain_effect = np.zeros((n_domains, n_genes))
    domain_genes = markers[n_cell_types * MARKERS_PER_TYPE :]
    for domain in range(n_domains):
        domain_effect[domain, domain_genes[domain * DOMAIN_GENES : (domain + 1) * DOMAIN_GENES]] = 0.7

    xy, domains, sections = _layout(n_cells, n_sections, plane_spacing_um, rng)
    cumulative = np.cumsum(composition[domains], axis=1)
    cell_types = (rng.random(n_cells)[:, None] > cumulative).sum(axis=1).clip(max=n_cell_types - 1)
    counts = sparse.vstack(
        [
            _counts(log_means[cell_types[block]] + domain_effect[domains[block]], rng)
            for block in np.array_split(np.arange(n_cells), max(1, n_cells // CELLS_PER_BLOCK))
        ],
        format="csr",
    )

    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type_{t}" for t in cell_types]),
            "domain": pd.Categorical([f"domain_{d}" for d in domains]),
            "section": pd.Categorical([f"section_{s}" for s in sections]),
        },
        index=[f"cell_{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=[f"gene_{g}" for g in range(n_genes)])
    adata = AnnData(X=counts, obs=obs, var=var)
    adata.layers["counts"] = counts.copy()
    adata.obsm["spatial"] = xy
    adata.uns["synthetic_tissue"] = {
        "seed": seed,
        "n_domains": n_domains,
        "units": "microns",
        "area_per_cell_um2": AREA_PER_CELL_UM2,
    }
    return adata

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
) -> AnnData:
    """Simulate tissue sections with spatial domains, cell types and negative-binomial counts.

    Every section is a rectangle of uniformly scattered cells (one per 150 square microns) split
    into four wavy layered bands, with two round patches cut into them: six domains in all, with
    boundaries that differ between sections. Each domain has its own mixture of cell types (a few
    dominant types over a shared background); each cell type has its own expression program
    (marker genes over a shared baseline) and each domain adds a mild program of its own. Counts
    are negative binomial around those means times a per-cell size factor.

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
    rng = np.random.default_rng(seed)
    n_domains = N_BANDS + N_PATCHES

    composition = rng.dirichlet(np.full(n_cell_types, 0.3), size=n_domains)
    composition = 0.9 * composition + 0.1 / n_cell_types

    baseline = rng.normal(0.0, 0.8, n_genes) + np.log(2.0)
    log_means = np.tile(baseline, (n_cell_types, 1))
    markers = rng.permutation(n_genes)
    for cell_type in range(n_cell_types):
        type_markers = markers[cell_type * MARKERS_PER_TYPE : (cell_type + 1) * MARKERS_PER_TYPE]
        log_means[cell_type, type_markers] += 2.0
    domain_effect = np.zeros((n_domains, n_genes))
    domain_genes = markers[n_cell_types * MARKERS_PER_TYPE :]
    for domain in range(n_domains):
        domain_effect[domain, domain_genes[domain * DOMAIN_GENES : (domain + 1) * DOMAIN_GENES]] = 0.7

    sizes = np.full(n_sections, n_cells // n_sections)
    sizes[: n_cells % n_sections] += 1
    xy_parts, domain_parts, section_parts = [], [], []
    for section, size in enumerate(sizes):
        area = size * AREA_PER_CELL_UM2
        width = np.sqrt(area * 1.25)
        height = area / width
        xy = rng.uniform([0.0, 0.0], [width, height], size=(size, 2))
        xy_parts.append(xy)
        domain_parts.append(_domain_of_cells(xy, width, height, rng))
        section_parts.append(np.full(size, section))
    xy = np.concatenate(xy_parts)
    domains = np.concatenate(domain_parts)
    sections = np.concatenate(section_parts)

    cumulative = np.cumsum(composition[domains], axis=1)
    cell_types = (rng.random(n_cells)[:, None] > cumulative).sum(axis=1).clip(max=n_cell_types - 1)
    size_factors = rng.lognormal(0.0, 0.3, n_cells)
    means = np.exp(log_means[cell_types] + domain_effect[domains]) * size_factors[:, None]
    rates = rng.gamma(NB_INVERSE_DISPERSION, means / NB_INVERSE_DISPERSION)
    counts = sparse.csr_matrix(rng.poisson(rates).astype(np.float32))

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

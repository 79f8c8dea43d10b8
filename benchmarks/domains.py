"""Spatial domains on real tissue: CellTransformer against three baselines, and batch mixing.

On ``../shared/data/osmfish.h5ad`` (11 annotated regions, ``Excluded`` cells left out) and
``../shared/data/starmap_mpfc.h5ad`` (4 cortical layers, 3 sections) computes ARI and NMI against
the annotation with k = the number of annotated regions, for CellTransformer domains (the recipe
below, unchanged for both files) and three baselines run in the same script: k-means on
expression PCA, k-means on the cell-type composition of each cell's 10 nearest neighbours, and
k-means on expression PCA averaged over 3 hops of that graph. Each baseline is reported twice:
in its standard variant (normalised log1p expression, 30 PCs; the 10 neighbours without the cell
itself) and at the best of several usual variants (preprocessing, number of PCs, the cell itself
in its neighbourhood or not), chosen on the annotation itself: an optimistic bound for the
baselines, against one fixed recipe for CellTransformer. Every figure is the mean over 3 seeds
(training and clustering for CellTransformer, clustering for the baselines).

With ``--mixing``, also trains on ``../shared/data/merfish_hypothal_3sec.h5ad`` (two animals) with
and without ``batch_key`` and prints how evenly the animals spread over the domains.

Usage::

    python benchmarks/domains.py [--data ../shared/data] [--seeds 3] [--mixing]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc
import scvi
import squidpy as sq
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

import celltransformer as ct

# The default recipe (docs/domains.md), in units of the cell spacing (median nearest-neighbour
# distance): radius graph, batch_key = section, a small model, whitened embedding, smoothing.
RECIPE = {
    "radius_spacings": 4.0,
    "whitened_components": 20,
    "smoothing_spacings": 3.0,
    "model": {"d_model": 64, "n_heads": 4, "n_encoder_layers": 2, "n_decoder_layers": 2, "dim_feedforward": 128},
    "train": {"max_epochs": 20, "batch_size": 32, "plan_kwargs": {"warmup_steps": 100}},
}
EXCLUDED = ("Excluded",)
# The variant a user would run first, as scanpy's tutorials do.
STANDARD_VARIANTS = {
    "expression PCA": "normalised log1p, 30 PCs",
    "neighbourhood composition": "10 neighbours",
    "PCA over 3 hops": "normalised log1p, 30 PCs",
}
PUBLISHED_BASELINES = {"osmfish": (0.34, 0.49, 0.58), "starmap_mpfc": (0.26, 0.62, 0.38)}


def celltransformer_embedding(adata: ad.AnnData, seed: int, batch_key: str | None, **setup) -> tuple[np.ndarray, float]:
    """Train with the recipe and return the smoothed embedding and the training time."""
    adata = adata.copy()
    spacing = ct.tl.cell_spacing(adata, library_key="section")
    sq.gr.spatial_neighbors_radius(adata, radius=RECIPE["radius_spacings"] * spacing, library_key="section")
    ct.CellTransformer.setup_anndata(adata, cell_type_key="cell_type", library_key="section", batch_key=batch_key, **setup)
    scvi.settings.seed = seed
    model = ct.CellTransformer(adata, **RECIPE["model"])
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, **RECIPE["train"])
    elapsed = time.perf_counter() - start
    model.embed(adata)
    ct.tl.whiten(adata, n_comps=RECIPE["whitened_components"])
    ct.tl.smooth(adata, use_rep="X_celltransformer_white", sigma=RECIPE["smoothing_spacings"] * spacing, library_key="section")
    return adata.obsm["X_celltransformer_white_smoothed"], elapsed


def knn_graph(adata: ad.AnnData) -> sparse.csr_matrix:
    """10 nearest spatial neighbours per cell, within sections."""
    scratch = ad.AnnData(obs=adata.obs[["section"]].copy(), obsm={"spatial": adata.obsm["spatial"]})
    sq.gr.spatial_neighbors_knn(scratch, n_neighs=10, library_key="section")
    return scratch.obsp["spatial_connectivities"].tocsr()


def expression_pcas(adata: ad.AnnData) -> dict[str, np.ndarray]:
    """Expression PCA under several usual preprocessings (the baselines get the best one)."""
    variants = {}
    for normalize in (True, False):
        for scale in (False, True):
            scratch = ad.AnnData(X=adata.X.astype(np.float32).copy())
            if normalize:
                sc.pp.normalize_total(scratch, target_sum=1e4)
            sc.pp.log1p(scratch)
            if scale:
                sc.pp.scale(scratch)
            for n_comps in (10, 30):
                name = f"{'normalised ' if normalize else ''}log1p{' scaled' if scale else ''}, {n_comps} PCs"
                variants[name] = sc.pp.pca(scratch, n_comps=min(n_comps, adata.n_vars - 1), copy=True).obsm["X_pca"]
    return variants


def baseline_features(adata: ad.AnnData) -> dict[str, dict[str, np.ndarray]]:
    """Features of the three baselines, each in several variants.

    Expression PCA; the cell-type composition of each cell's 10 nearest neighbours (with or
    without the cell itself, as fractions); expression PCA averaged over 3 hops of that graph.
    """
    graph = knn_graph(adata)
    with_self = graph + sparse.eye(adata.n_obs)
    types = np.eye(adata.obs["cell_type"].nunique())[adata.obs["cell_type"].cat.codes.to_numpy()]
    compositions = {}
    for name, neighbours in (("10 neighbours", graph), ("10 neighbours and the cell", with_self)):
        composition = np.asarray(neighbours @ types)
        compositions[name] = composition / np.maximum(composition.sum(axis=1, keepdims=True), 1)
    walk = sparse.diags(1 / np.asarray(with_self.sum(axis=1)).ravel()) @ with_self
    pcas = expression_pcas(adata)
    averaged = {name: walk @ (walk @ (walk @ pca)) for name, pca in pcas.items()}
    return {"expression PCA": pcas, "neighbourhood composition": compositions, "PCA over 3 hops": averaged}


def scores(features: np.ndarray, truth: np.ndarray, scored: np.ndarray, k: int, seed: int) -> tuple[float, float]:
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(features)
    return adjusted_rand_score(truth[scored], labels[scored]), normalized_mutual_info_score(truth[scored], labels[scored])


def benchmark_file(path: Path, seeds: int) -> None:
    adata = ad.read_h5ad(path)
    truth = adata.obs["region"].astype(str).to_numpy()
    scored = ~np.isin(truth, EXCLUDED)
    k = len(np.unique(truth[scored]))
    results: dict[str, list[tuple[float, float]]] = {}
    for family, variants in baseline_features(adata).items():
        by_variant = {
            variant: [scores(features, truth, scored, k, seed) for seed in range(seeds)]
            for variant, features in variants.items()
        }
        best = max(by_variant, key=lambda variant: np.mean([ari for ari, _ in by_variant[variant]]))
        results[f"{family}, standard ({STANDARD_VARIANTS[family]})"] = by_variant[STANDARD_VARIANTS[family]]
        results[f"{family}, best of {len(variants)} variants ({best})"] = by_variant[best]
    times = []
    for seed in range(seeds):
        embedding, elapsed = celltransformer_embedding(adata, seed, batch_key="section")
        times.append(elapsed)
        results.setdefault("CellTransformer", []).append(scores(embedding, truth, scored, k, seed))
    print(f"\n## {path.stem}: {adata.n_obs} cells ({scored.sum()} scored), {adata.n_vars} genes, k = {k}")
    print("| method | ARI (mean +- sd) | NMI (mean +- sd) |")
    print("|---|---|---|")
    for name, values in results.items():
        ari, nmi = np.array(values).T
        print(f"| {name} | {ari.mean():.3f} +- {ari.std():.3f} | {nmi.mean():.3f} +- {nmi.std():.3f} |")
    published = PUBLISHED_BASELINES.get(path.stem)
    if published:
        families = ("expression PCA", "neighbourhood composition", "PCA over 3 hops")
        print(f"baselines measured before (ARI, README of the data): {dict(zip(families, published, strict=True))}")
    print(f"CellTransformer training time on this CPU: {np.mean(times):.0f} s per model (max {np.max(times):.0f} s)")


def benchmark_mixing(path: Path) -> None:
    adata = ad.read_h5ad(path)
    adata.obs["animal"] = adata.obs["section"].astype(str).str.split("_").str[0].astype("category")
    k = adata.obs["cell_type"].nunique()
    print(f"\n## batch mixing on {path.stem}: {adata.n_obs} cells, animals {dict(adata.obs['animal'].value_counts())}, k = {k}")
    print("| setup | mixing score (1 = every domain has the animals' overall shares) | worst domain's distance |")
    print("|---|---|---|")
    for batch_key in (None, "animal"):
        embedding, _ = celltransformer_embedding(adata, 0, batch_key=batch_key, expression_is_log1p=True)
        adata.obsm["X_domains"] = embedding
        ct.tl.domains(adata, n_domains=k, use_rep="X_domains", key_added="domains", seed=0)
        table, score = ct.tl.domain_mixing(adata, "domains", "animal")
        print(f"| batch_key={batch_key!r} | {score:.3f} | {table['distance'].max():.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[1].parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mixing", action="store_true", help="also measure batch mixing on the MERFISH data")
    parser.add_argument("--skip-quality", action="store_true", help="only the mixing part")
    args = parser.parse_args()
    print(f"recipe: {RECIPE}")
    if not args.skip_quality:
        for name in ("osmfish", "starmap_mpfc"):
            benchmark_file(args.data / f"{name}.h5ad", args.seeds)
    if args.mixing:
        benchmark_mixing(args.data / "merfish_hypothal_3sec.h5ad")


if __name__ == "__main__":
    main()

"""Loaders of real datasets: conversion of the original file formats, and the checked download."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import shared_file
from scipy import sparse

import celltransformer as ct
from celltransformer.datasets import _download
from celltransformer.datasets._osmfish import MICRONS_PER_PIXEL, OSMFISH_LOOM
from celltransformer.datasets._starmap import LAYERS, STARMAP_RDATA, _genes_by_cells

PROVENANCE_KEYS = {"licence", "note", "source", "tech", "tissue", "units"}


# --- writers of the original formats -----------------------------------------------------------


def write_osmfish_loom(path: Path, adata: ad.AnnData, variable_length_strings: bool = False) -> Path:
    """A loom holding ``adata`` the way the Linnarsson lab's osmFISH file stores it (pixels)."""
    string_type = h5py.string_dtype() if variable_length_strings else None

    def text(values) -> np.ndarray:
        values = np.asarray(values, dtype=str)
        return values.astype(object) if variable_length_strings else values.astype("S")

    cell_ids = adata.obs_names.str.removeprefix("cell_")
    with h5py.File(path, "w") as loom:
        loom["matrix"] = np.asarray(sparse.csr_matrix(adata.X).toarray().T, dtype=np.float64)
        loom.create_dataset("row_attrs/Gene", data=text(adata.var_names), dtype=string_type)
        columns = {
            "CellID": text(cell_ids),
            "ClusterName": text(adata.obs["cell_type"]),
            "Region": text(adata.obs["region"]),
        }
        for name, values in columns.items():
            loom.create_dataset(f"col_attrs/{name}", data=values, dtype=string_type)
        loom["col_attrs/Valid"] = adata.obs["valid"].to_numpy().astype(np.int64)
        loom["col_attrs/X"] = adata.obsm["spatial"][:, 0] / MICRONS_PER_PIXEL
        loom["col_attrs/Y"] = adata.obsm["spatial"][:, 1] / MICRONS_PER_PIXEL
        loom["col_attrs/size_um2"] = adata.obs["size_um2"].to_numpy()
        loom["col_attrs/size_pix"] = np.round(adata.obs["size_um2"].to_numpy() / MICRONS_PER_PIXEL**2)
        loom.create_group("layers")
    return path


@dataclass
class RMatrix:
    """An R integer matrix with dimnames, for the RData writer."""

    values: np.ndarray
    rownames: np.ndarray
    colnames: np.ndarray


def _rmatrix_to_r(matrix: RMatrix, converter):
    from rdata.conversion.to_r import build_r_object
    from rdata.parser import RObjectType

    attributes = converter.convert_to_r_attributes(
        {
            "dim": np.array(matrix.values.shape, dtype=np.int32),
            "dimnames": [np.asarray(matrix.rownames, dtype="U"), np.asarray(matrix.colnames, dtype="U")],
        }
    )
    values = np.ravel(matrix.values.astype(np.int32), order="F")
    return build_r_object(RObjectType.INT, value=values, attributes=attributes)


def write_starmap_rdata(path: Path, adata: ad.AnnData, cell_types_as_factor: bool = True) -> Path:
    """An RData holding ``adata`` the way BASS-Analysis's ``starmap_mpfc.RData`` stores it."""
    import rdata
    from rdata.conversion.to_r import DEFAULT_CLASS_MAP

    layer_numbers = {name: number for number, name in LAYERS.items()}
    counts, info = {}, {}
    for section in adata.obs["section"].cat.categories:
        part = adata[adata.obs["section"] == section]
        cells = part.obs_names.str.removeprefix(f"{section}_")
        genes_by_cells = np.asarray(sparse.csr_matrix(part.X).toarray().T)
        counts[section] = RMatrix(genes_by_cells, np.asarray(part.var_names), np.asarray(cells))
        cell_types = part.obs["cell_type"].astype(str)
        info[section] = pd.DataFrame(
            {
                "x": part.obsm["spatial"][:, 0],
                "y": part.obsm["spatial"][:, 1],
                "z": part.obs["region"].astype(str).map(layer_numbers).to_numpy(dtype=np.int32),
                "c": pd.Categorical(cell_types) if cell_types_as_factor else cell_types.to_numpy(dtype=object),
            },
            index=pd.Index(np.asarray(cells, dtype=object)),
        )
    constructors = {**DEFAULT_CLASS_MAP, RMatrix: _rmatrix_to_r}
    rdata.write_rda(path, {"starmap_cnts": counts, "starmap_info": info}, constructor_dict=constructors)
    return path


# --- small fixtures ----------------------------------------------------------------------------


def tiny_osmfish() -> ad.AnnData:
    """Four cells of two genes, one of them excluded by the authors, in the converted layout."""
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(["Pyramidal L5", "Astrocyte Gfap", "Excluded", "Pyramidal L5"]),
            "region": pd.Categorical(["Layer 5", "Layer 6", "Excluded", "Layer 5"]),
            "valid": [True, True, False, True],
            "size_um2": np.array([100, 2000, 9, 57], dtype=np.float64) * MICRONS_PER_PIXEL**2,
            "section": pd.Categorical(["SSp_section1"] * 4),
        },
        index=pd.Index(["cell_12", "cell_3", "cell_7", "cell_40"]),
    )
    adata = ad.AnnData(
        X=sparse.csr_matrix(np.array([[5, 0], [0, 2], [1, 1], [30, 4]], dtype=np.float32)),
        obs=obs,
        var=pd.DataFrame(index=pd.Index(["Gad2", "Gfap"])),
    )
    adata.obsm["spatial"] = np.array([[-6.5, 0.0], [13.0, 26.0], [650.0, 65.0], [1.3, 2.6]])
    return adata


def tiny_starmap() -> ad.AnnData:
    """Two sections of two and three cells, three genes, in the converted layout."""
    sections = ["20180417_BZ5_control"] * 2 + ["20180419_BZ9_control"] * 3
    cells = ["69x4486", "93x1063", "10x20", "11x21", "12x22"]
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(["eL2/3", "Astro", "VIP", "eL2/3", "Smc"]),
            "region": pd.Categorical(["L2/3", "L1", "L6", "L5", "L1"], categories=list(LAYERS.values())),
            "section": pd.Categorical(sections),
        },
        index=pd.Index([f"{section}_{cell}" for section, cell in zip(sections, cells, strict=True)]),
    )
    counts = np.array([[0, 3, 1], [2, 0, 0], [7, 1, 0], [0, 0, 9], [1, 1, 1]], dtype=np.float32)
    adata = ad.AnnData(X=sparse.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=pd.Index(["Arc", "Aqp4", "Vip"])))
    adata.obsm["spatial"] = np.array([[68.9, 4486.0], [92.8, 1062.7], [10.0, 20.0], [11.0, 21.0], [12.5, 22.5]])
    return adata


def assert_same_layout(converted: ad.AnnData, expected: ad.AnnData) -> None:
    """Field-by-field equality of a converted dataset and the expected one (provenance aside)."""
    assert sparse.issparse(converted.X) and converted.X.dtype == np.float32
    np.testing.assert_array_equal(converted.X.toarray(), sparse.csr_matrix(expected.X).toarray())
    pd.testing.assert_index_equal(converted.var_names, expected.var_names)
    assert list(converted.var.columns) == list(expected.var.columns)
    pd.testing.assert_index_equal(converted.obs_names, expected.obs_names)
    pd.testing.assert_frame_equal(converted.obs, expected.obs, check_index_type=False)
    np.testing.assert_allclose(converted.obsm["spatial"], expected.obsm["spatial"], rtol=1e-12, atol=1e-9)
    assert converted.obsm["spatial"].dtype == np.float64
    assert set(converted.uns["provenance"]) == PROVENANCE_KEYS


# --- osmFISH -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variable_length_strings", [False, True], ids=["fixed-length", "variable-length"])
def test_osmfish_conversion_of_a_tiny_loom(tmp_path, variable_length_strings):
    expected = tiny_osmfish()
    loom = write_osmfish_loom(tmp_path / "tiny.loom", expected, variable_length_strings)
    converted = ct.datasets.osmfish(path=loom)
    assert_same_layout(converted, expected)
    assert converted.obs["cell_type"].dtype == "category"
    assert converted.obs["valid"].dtype == bool
    assert converted.uns["provenance"]["note"] == "region='Excluded'/valid=False for 1 cells"
    assert converted.uns["provenance"]["units"] == "microns (pixel coordinates x 0.065)"
    np.testing.assert_allclose(converted.obsm["spatial"][0], [-6.5, 0.0])


def test_osmfish_conversion_matches_the_shared_file(tmp_path):
    shared = ad.read_h5ad(shared_file("osmfish.h5ad"))
    loom = write_osmfish_loom(tmp_path / "osmFISH_SScortex_mouse_all_cells.loom", shared)
    converted = ct.datasets.osmfish(path=loom)
    assert_same_layout(converted, shared)
    assert converted.uns["provenance"]["note"] == shared.uns["provenance"]["note"]
    assert converted.uns["provenance"]["units"] == shared.uns["provenance"]["units"]
    assert converted.shape == (6471, 33)


# --- STARmap -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell_types_as_factor", [True, False], ids=["factor", "character"])
def test_starmap_conversion_of_a_tiny_rdata(tmp_path, cell_types_as_factor):
    expected = tiny_starmap()
    path = write_starmap_rdata(tmp_path / "tiny.RData", expected, cell_types_as_factor)
    converted = ct.datasets.starmap_mpfc(path=path)
    assert_same_layout(converted, expected)
    assert list(converted.obs["region"].cat.categories) == ["L1", "L2/3", "L5", "L6"]
    assert converted.uns["provenance"]["units"] == "pixels (STARmap image)"


def test_starmap_conversion_matches_the_shared_file(tmp_path):
    shared = ad.read_h5ad(shared_file("starmap_mpfc.h5ad"))
    path = write_starmap_rdata(tmp_path / "starmap_mpfc.RData", shared)
    converted = ct.datasets.starmap_mpfc(path=path)
    assert_same_layout(converted, shared)
    assert converted.shape == (3190, 166)


def test_starmap_sparse_count_matrix_reads_like_a_dense_one():
    dense = np.array([[0, 4, 0], [1, 0, 2]])
    compressed = sparse.csc_matrix(dense)
    dgc_matrix = SimpleNamespace(
        i=compressed.indices,
        p=compressed.indptr,
        x=compressed.data.astype(np.float64),
        Dim=np.array([2, 3]),
        Dimnames=[np.array(["Arc", "Vip"]), np.array(["a", "b", "c"])],
    )
    matrix, genes, cells = _genes_by_cells(dgc_matrix)
    np.testing.assert_array_equal(sparse.csc_matrix(matrix).toarray(), dense)
    assert list(genes) == ["Arc", "Vip"] and list(cells) == ["a", "b", "c"]


def test_starmap_sections_with_different_genes_are_refused(tmp_path, monkeypatch):
    import rdata

    path = write_starmap_rdata(tmp_path / "tiny.RData", tiny_starmap())
    objects = rdata.read_rda(path)
    second_section = list(objects["starmap_cnts"])[1]
    counts = objects["starmap_cnts"][second_section]
    objects["starmap_cnts"][second_section] = counts.assign_coords(dim_0=["Vip", "Aqp4", "Arc"])
    monkeypatch.setattr(rdata, "read_rda", lambda _: objects)
    with pytest.raises(ValueError, match="same genes"):
        ct.datasets.starmap_mpfc(path=path)


# --- download ----------------------------------------------------------------------------------


def test_first_download_without_a_hash_is_recorded_and_checked_later(tmp_path, monkeypatch):
    import pooch

    content = tmp_path / "served.bin"
    content.write_bytes(b"original file")
    checks = []

    def fake_retrieve(url, known_hash, fname, path):
        checks.append(known_hash)
        target = Path(path) / fname
        target.write_bytes(content.read_bytes())
        if known_hash is not None and pooch.file_hash(str(target)) != known_hash.split(":")[1]:
            raise ValueError("hash mismatch")
        return str(target)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    remote = _download.RemoteFile(url="https://example.org/data.bin", filename="data.bin")
    with pytest.warns(UserWarning, match="first download has sha256:"):
        _download.fetch(remote, cache_dir=tmp_path)
    digest = pooch.file_hash(str(content))
    assert (tmp_path / "data.bin.sha256").read_text() == digest
    _download.fetch(remote, cache_dir=tmp_path)
    assert checks == [None, f"sha256:{digest}"]
    content.write_bytes(b"tampered file")
    with pytest.raises(ValueError, match="hash mismatch"):
        _download.fetch(remote, cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("loader", "remote", "write"),
    [
        (ct.datasets.osmfish, OSMFISH_LOOM, lambda path: write_osmfish_loom(path, tiny_osmfish())),
        (ct.datasets.starmap_mpfc, STARMAP_RDATA, lambda path: write_starmap_rdata(path, tiny_starmap())),
    ],
    ids=["osmfish", "starmap_mpfc"],
)
def test_download_goes_through_pooch_with_the_hash_and_cache(loader, remote, write, tmp_path, monkeypatch):
    import pooch

    calls = []

    def fake_retrieve(url, known_hash, fname, path):
        calls.append({"url": url, "known_hash": known_hash, "fname": fname, "path": Path(path)})
        return str(write(Path(path) / fname))

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    adata = loader(cache_dir=tmp_path, known_hash="sha256:" + "0" * 64)
    assert calls == [
        {"url": remote.url, "known_hash": "sha256:" + "0" * 64, "fname": remote.filename, "path": tmp_path}
    ]
    assert adata.n_obs > 0 and set(adata.uns["provenance"]) == PROVENANCE_KEYS


def test_default_cache_is_the_operating_system_cache(monkeypatch, tmp_path):
    import pooch

    monkeypatch.setattr(pooch, "os_cache", lambda name: tmp_path / name)
    monkeypatch.setattr(pooch, "retrieve", lambda url, known_hash, fname, path: str(Path(path) / fname))
    remote = _download.RemoteFile(url="https://example.org/data.bin", filename="data.bin", known_hash="md5:00")
    assert _download.fetch(remote) == tmp_path / "celltransformer" / "data.bin"

"""Fetching the public original file of a dataset, checked against its hash and cached."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

CACHE_NAME = "celltransformer"


@dataclass(frozen=True)
class RemoteFile:
    """Where a dataset's original file lives, and the hash it must have.

    Parameters
    ----------
    url
        Download address; a pinned commit where the host allows it, so the content cannot change.
    filename
        Name of the file in the cache.
    known_hash
        ``"sha256:..."`` (or another algorithm :func:`pooch.retrieve` knows); ``None`` where no
        hash has been published (the first download is then trusted and recorded).
    """

    url: str
    filename: str
    known_hash: str | None = None


def fetch(remote: RemoteFile, cache_dir: str | Path | None = None, known_hash: str | None = None) -> Path:
    """Download ``remote`` once into the cache, check its hash and return its local path.

    With a known hash (``known_hash``, else ``remote.known_hash``) the download is checked
    against it. Where no hash has been published, the first download is trusted: its SHA-256 is
    recorded next to the cached file, reported in a warning (pin it with ``known_hash=``), and
    every later use checks the cached file against it.

    Parameters
    ----------
    remote
        The file to fetch.
    cache_dir
        Cache folder; by default the operating system's cache folder for ``celltransformer``.
    known_hash
        Overrides ``remote.known_hash``, e.g. ``"sha256:<hex digest>"``.

    Returns
    -------
    Path of the cached file.

    Raises
    ------
    ValueError
        If the cached file no longer has the hash recorded at its first download.
    """
    import pooch

    cache = Path(cache_dir) if cache_dir is not None else Path(pooch.os_cache(CACHE_NAME))
    expected_hash = known_hash or remote.known_hash
    recorded = cache / f"{remote.filename}.sha256"
    if expected_hash is None and recorded.exists():
        expected_hash = "sha256:" + recorded.read_text().strip()
    downloaded = Path(pooch.retrieve(remote.url, known_hash=expected_hash, fname=remote.filename, path=cache))
    if expected_hash is None:
        digest = pooch.file_hash(str(downloaded), alg="sha256")
        recorded.write_text(digest)
        warnings.warn(
            f"No published hash is known for {remote.url}; this first download has sha256:{digest}, "
            "now recorded in the cache and checked on every later use. Pass "
            f"known_hash='sha256:{digest}' to check future downloads elsewhere.",
            UserWarning,
            stacklevel=3,
        )
    return downloaded

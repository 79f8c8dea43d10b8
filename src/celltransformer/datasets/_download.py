"""Fetching the public original file of a dataset, checked against its hash and cached."""

from __future__ import annotations

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
        hash has been published, in which case the caller must supply one.
    """

    url: str
    filename: str
    known_hash: str | None = None


def fetch(remote: RemoteFile, cache_dir: str | Path | None = None, known_hash: str | None = None) -> Path:
    """Download ``remote`` once into the cache, check its hash and return its local path.

    Parameters
    ----------
    remote
        The file to fetch.
    cache_dir
        Cache folder; by default the operating system's cache folder for ``celltransformer``.
    known_hash
        Overrides ``remote.known_hash``.

    Returns
    -------
    Path of the cached file.

    Raises
    ------
    ValueError
        If neither ``known_hash`` nor ``remote.known_hash`` is given: the package never downloads
        a file it cannot check.
    """
    import pooch

    expected_hash = known_hash or remote.known_hash
    if expected_hash is None:
        raise ValueError(
            f"No published hash is known for {remote.url}. Download it yourself and pass "
            f"`path=` to read it, or pass `known_hash=` (for example 'sha256:<hex digest>' of a "
            f"copy you trust) to let the loader download and check it."
        )
    cache = Path(cache_dir) if cache_dir is not None else Path(pooch.os_cache(CACHE_NAME))
    downloaded = pooch.retrieve(remote.url, known_hash=expected_hash, fname=remote.filename, path=cache)
    return Path(downloaded)

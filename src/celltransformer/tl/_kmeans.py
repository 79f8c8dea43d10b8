"""Minibatch k-means in torch: millions of cells on the CPU, or on the GPU when there is one.

The embedding stays where it is (in memory or memory-mapped); only minibatches and chunks of it
move to the device, so memory beyond the data is ``O(batch_size x dim + k x dim)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class KMeansResult:
    """Centres and labels of a k-means clustering."""

    centers: np.ndarray
    labels: np.ndarray
    inertia: float


def default_device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _squared_distances(points: torch.Tensor, centers: torch.Tensor, center_norms: torch.Tensor) -> torch.Tensor:
    return (points * points).sum(1, keepdim=True) - 2 * points @ centers.T + center_norms[None, :]


def assign(
    data: np.ndarray, centers: np.ndarray, device: torch.device, chunk_size: int = 65_536
) -> tuple[np.ndarray, float]:
    """Nearest centre of every row of ``data``, computed chunk by chunk; also the total inertia."""
    centers_t = torch.as_tensor(centers, dtype=torch.float32, device=device)
    center_norms = (centers_t * centers_t).sum(1)
    labels = np.empty(len(data), dtype=np.int64)
    inertia = 0.0
    for start in range(0, len(data), chunk_size):
        chunk = torch.as_tensor(np.asarray(data[start : start + chunk_size], dtype=np.float32), device=device)
        distances, nearest = _squared_distances(chunk, centers_t, center_norms).min(dim=1)
        labels[start : start + len(chunk)] = nearest.cpu().numpy()
        inertia += float(distances.clamp_min(0).sum())
    return labels, inertia


def kmeans_plus_plus(sample: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding on a sample.

    Each new centre is the best (lowest resulting inertia) of ``2 + log(k)`` candidates drawn
    with probability proportional to the squared distance to the nearest chosen centre.
    """
    n_trials = 2 + int(np.log(k))
    first = torch.randint(len(sample), (1,), generator=generator).item()
    centers = [sample[first]]
    closest = ((sample - sample[first]) ** 2).sum(1)
    for _ in range(1, k):
        weights = closest.cpu() if closest.sum() > 0 else torch.ones(len(closest))
        candidates = torch.multinomial(weights, n_trials, replacement=True, generator=generator).to(sample.device)
        candidate_distances = torch.minimum(closest[None, :], torch.cdist(sample[candidates], sample) ** 2)
        best = candidate_distances.sum(1).argmin()
        centers.append(sample[candidates[best]])
        closest = candidate_distances[best]
    return torch.stack(centers)


def lloyd_pass(data: np.ndarray, centers: np.ndarray, device: torch.device, chunk_size: int = 65_536) -> np.ndarray:
    """One Lloyd iteration over all rows, chunk by chunk: every centre moves to its points' mean."""
    centers_t = torch.as_tensor(centers, dtype=torch.float32, device=device)
    center_norms = (centers_t * centers_t).sum(1)
    sums = torch.zeros_like(centers_t, dtype=torch.float64)
    counts = torch.zeros(len(centers_t), dtype=torch.float64, device=device)
    for start in range(0, len(data), chunk_size):
        chunk = torch.as_tensor(np.asarray(data[start : start + chunk_size], dtype=np.float32), device=device)
        nearest = _squared_distances(chunk, centers_t, center_norms).argmin(1)
        sums.index_add_(0, nearest, chunk.double())
        counts += torch.bincount(nearest, minlength=len(centers_t)).double()
    moved = counts > 0
    centers_t[moved] = (sums[moved] / counts[moved, None]).float()
    return centers_t.cpu().numpy()


def minibatch_kmeans(
    data: np.ndarray,
    k: int,
    seed: int = 0,
    batch_size: int = 8192,
    n_epochs: int = 3,
    n_refinements: int = 2,
    n_init: int = 3,
    init_size: int | None = None,
    device: torch.device | str | None = None,
) -> KMeansResult:
    """Cluster the rows of ``data`` into ``k`` groups with minibatch k-means (Sculley, 2010).

    Centres are seeded by greedy k-means++ on a random sample (best of ``n_init``), then updated from random
    minibatches with per-centre learning rates ``1 / count`` (a centre that no minibatch reached
    halfway is moved to a random point), and finally refined by full Lloyd iterations over all
    rows, computed chunk by chunk. Labels are the nearest centre of every row.

    Parameters
    ----------
    data
        ``(n, dim)`` array, possibly memory-mapped.
    k
        Number of clusters.
    seed
        Seed of the sampling; the same seed gives the same clustering on the same device.
    batch_size
        Rows per minibatch.
    n_epochs
        Passes' worth of minibatches over the data (at least 100 minibatches are used).
    n_refinements
        Full Lloyd iterations after the minibatch phase.
    n_init
        k-means++ seedings tried; the one with the lowest inertia on the sample is kept.
    init_size
        Rows sampled for the k-means++ seeding (default: ``max(3 * batch_size, 20 * k)``).
    device
        Where to compute; default the GPU when there is one.

    Returns
    -------
    Centres ``(k, dim)``, labels ``(n,)`` and the inertia (sum of squared distances).
    """
    n_obs = len(data)
    if not 1 <= k <= n_obs:
        raise ValueError(f"The number of domains must be between 1 and the number of cells ({n_obs}), got {k}.")
    device = torch.device(device) if device is not None else default_device()
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    init_size = min(n_obs, init_size or max(3 * batch_size, 20 * k))
    sample = torch.as_tensor(
        np.asarray(data[np.sort(rng.choice(n_obs, init_size, replace=False))], dtype=np.float32), device=device
    )
    centers = min(
        (kmeans_plus_plus(sample, k, generator) for _ in range(n_init)),
        key=lambda seeds: _squared_distances(sample, seeds, (seeds * seeds).sum(1)).min(1).values.sum().item(),
    )
    counts = torch.zeros(k, device=device)
    n_steps = max(100, n_epochs * -(-n_obs // batch_size))
    for step in range(n_steps):
        rows = np.sort(rng.choice(n_obs, min(batch_size, n_obs), replace=False))
        batch = torch.as_tensor(np.asarray(data[rows], dtype=np.float32), device=device)
        nearest = _squared_distances(batch, centers, (centers * centers).sum(1)).argmin(1)
        batch_counts = torch.bincount(nearest, minlength=k).to(batch.dtype)
        sums = torch.zeros_like(centers).index_add_(0, nearest, batch)
        counts += batch_counts
        reached = batch_counts > 0
        centers[reached] += (sums[reached] - batch_counts[reached, None] * centers[reached]) / counts[reached, None]
        if step == n_steps // 2:
            centers = _reseed_unreached(centers, counts, batch, generator)
    refined = centers.cpu().numpy()
    for _ in range(n_refinements):
        refined = lloyd_pass(data, refined, device)
    labels, inertia = assign(data, refined, device)
    return KMeansResult(centers=refined, labels=labels, inertia=inertia)


def _reseed_unreached(
    centers: torch.Tensor, counts: torch.Tensor, batch: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Move centres that no point has reached yet onto random points of the current batch."""
    unreached = torch.nonzero(counts == 0).ravel()
    if len(unreached):
        picks = torch.randint(len(batch), (len(unreached),), generator=generator).to(batch.device)
        centers[unreached] = batch[picks]
    return centers

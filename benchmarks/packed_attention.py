"""Fast (packed) versus dense attention at the published configuration.

For neighbourhoods from a radius graph averaging about 60 cells, and again with neighbourhoods
capped at 250 cells (about 230 on average), prints side by side for ``attention="fast"``, the
same with activation checkpointing, and ``attention="dense"``: training step time (forward, backward, Adam step) and the ratio
dense / fast, inference throughput in cells per second, the peak memory of a training step, and
the training step's useful FLOP rate as a fraction of a plain fp32 matrix multiply measured in the
same run. All figures come from this one run.

Usage::

    python benchmarks/packed_attention.py [--repeats 5]

On a machine with CUDA the same script measures on the GPU (peak memory from
``torch.cuda.max_memory_allocated``); otherwise on the CPU (peak resident set of a training step,
measured in a child process per configuration).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _measure import peak_memory  # noqa: E402
from _workloads import (  # noqa: E402
    BATCH_SIZE,
    REGIMES,
    packed_batches,
    published_module,
    registered_tissue,
    useful_training_flops,
)

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _on_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.to(DEVICE) for key, value in batch.items()}


def training_step(module, optimizer, batch) -> None:
    """One optimisation step: forward, backward, Adam."""
    optimizer.zero_grad(set_to_none=True)
    _, _, loss = module(batch)
    loss.loss.backward()
    optimizer.step()


def time_training_steps(module, batches, repeats: int) -> float:
    """Median wall time of a training step over ``repeats`` batches, after one warm-up step."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    training_step(module, optimizer, batches[0])
    times = []
    for batch in batches[1 : repeats + 1]:
        _synchronize()
        start = time.perf_counter()
        training_step(module, optimizer, batch)
        _synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@torch.inference_mode()
def inference_throughput(module, batches) -> float:
    """Reference cells embedded per second (``inference`` of every batch, after one warm-up)."""
    module.eval()
    module.inference(**module._get_inference_input(batches[0]))
    _synchronize()
    start = time.perf_counter()
    for batch in batches[1:]:
        module.inference(**module._get_inference_input(batch))
    _synchronize()
    module.train()
    return BATCH_SIZE * (len(batches) - 1) / (time.perf_counter() - start)


def matmul_rate(rows: int, repeats: int = 10) -> float:
    """FLOP/s of a plain fp32 multiply of a (rows x 384) by a (384 x 2048) matrix."""
    a = torch.randn(rows, 384, device=DEVICE)
    b = torch.randn(384, 2048, device=DEVICE)
    for _ in range(3):
        a @ b
    _synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize()
    return 2 * rows * 384 * 2048 * repeats / (time.perf_counter() - start)


def step_memory_in_child(regime: str, path: str) -> float:
    """Peak memory (bytes) a training step adds, measured in a fresh process."""
    command = [sys.executable, __file__, "--memory-child", regime, path]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(result.stdout.strip().splitlines()[-1])["bytes"])


PATHS = {
    "fast": {"attention": "fast", "checkpoint_activations": False},
    "fast, checkpointed": {"attention": "fast", "checkpoint_activations": True},
    "dense": {"attention": "dense", "checkpoint_activations": False},
}


def configure(module, path: str) -> None:
    """Select an attention path (and activation checkpointing) on the module."""
    module.attention = PATHS[path]["attention"]
    module.encoder.checkpoint_activations = module.decoder.checkpoint_activations = PATHS[path][
        "checkpoint_activations"
    ]


def measure_step_memory(regime: str, path: str) -> None:
    """Child process: print the memory one training step adds on top of model and batch."""
    module = published_module().to(DEVICE)
    configure(module, path)
    batch = _on_device(packed_batches(registered_tissue(REGIMES[regime]), 1)[0])
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        training_step(module, optimizer, batch)
        added = torch.cuda.max_memory_allocated() - before
    else:
        # The peak of the step alone: the process's lifetime peak (ru_maxrss) may come from
        # building the tissue, which would hide the difference between the paths.
        record: dict = {}
        with peak_memory(record, "step", baseline=psutil.Process().memory_info().rss):
            training_step(module, optimizer, batch)
        added = record["step peak (MB)"] * 2**20
    print(json.dumps({"bytes": added}))


def benchmark_regime(regime: str, repeats: int) -> dict[str, dict[str, float]]:
    """All figures of one neighbourhood-size regime, for both attention paths."""
    adata = registered_tissue(REGIMES[regime])
    batches = [_on_device(batch) for batch in packed_batches(adata, repeats + 1)]
    sizes = np.concatenate([np.diff(batch["offsets"].cpu().numpy()) for batch in batches])
    module = published_module().to(DEVICE)
    flops = np.mean([useful_training_flops(module, batch["offsets"].cpu()) for batch in batches[1:]])
    mean_tokens = int(sizes.mean() * BATCH_SIZE)
    ceiling = matmul_rate(max(mean_tokens, 512))
    figures = {"mean neighbourhood": dict.fromkeys(PATHS, float(sizes.mean()))}
    for path in PATHS:
        configure(module, path)
        step = time_training_steps(module, batches, repeats)
        figures.setdefault("training step (s)", {})[path] = step
        figures.setdefault("inference (cells/s)", {})[path] = inference_throughput(module, batches)
        figures.setdefault("step peak memory (MB)", {})[path] = step_memory_in_child(regime, path) / 2**20
        figures.setdefault("useful FLOP rate / matmul rate", {})[path] = flops / step / ceiling
    figures["matmul rate (GFLOP/s)"] = dict.fromkeys(PATHS, ceiling / 1e9)
    return figures


HIGHER_IS_BETTER = {"inference (cells/s)", "useful FLOP rate / matmul rate"}


def print_table(regime: str, figures: dict[str, dict[str, float]]) -> None:
    """Print one regime's figures, with how many times better than dense each fast path is."""
    fast_paths = [path for path in PATHS if path != "dense"]
    header = ["figure", *PATHS, *(f"{path} vs dense" for path in fast_paths)]
    print(f"\n## {regime}, batch {BATCH_SIZE}, published configuration, on {DEVICE.type}")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for name, values in figures.items():
        advantages = [
            values[path] / values["dense"] if name in HIGHER_IS_BETTER else values["dense"] / values[path]
            for path in fast_paths
        ]
        cells = [name, *(f"{values[path]:.3f}" for path in PATHS), *(f"{a:.2f}x" for a in advantages)]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps per path")
    parser.add_argument("--memory-child", nargs=2, metavar=("REGIME", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        measure_step_memory(*args.memory_child)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {DEVICE}")
    for regime in REGIMES:
        print_table(regime, benchmark_regime(regime, args.repeats))


if __name__ == "__main__":
    main()

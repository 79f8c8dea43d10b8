"""Command-line entry point: ``celltransformer demo``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="celltransformer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train on a synthetic tissue, write embeddings and domains, print the ARI",
        description=(
            "Simulate a tissue with known domains, build its squidpy graph, train a small "
            "CellTransformer on the CPU, cluster the embeddings into domains and compare them "
            "with the truth."
        ),
    )
    demo.add_argument("--out", type=Path, default=Path("celltransformer_demo"), help="output folder")
    demo.add_argument("--n-cells", type=int, default=6000, help="cells of the synthetic tissue")
    demo.add_argument("--epochs", type=int, default=8, help="training epochs")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    args = _parser().parse_args(argv)
    from ._demo import run_demo

    start = time.perf_counter()
    result = run_demo(args.out, n_cells=args.n_cells, max_epochs=args.epochs, seed=args.seed)
    print(f"embeddings and domains: {result.h5ad}")
    print(f"domains next to the truth: {result.figure}")
    print(f"ARI against the simulated domains: {result.ari:.3f} (NMI {result.nmi:.3f})")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0

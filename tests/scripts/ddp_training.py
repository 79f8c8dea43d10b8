"""Train and embed with Lightning DDP on 2 CPU processes (gloo); run by ``test_distributed.py``.

Usage: ``python ddp_training.py OUT_DIR``. Lightning starts the second process by running this
script again; every process records the reference cells of its training batches, then both
embed their share of the cells into ``OUT_DIR/embedding.npy``.
"""

import sys
from pathlib import Path

import numpy as np
import scvi
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).parents[1]))
from conftest import TINY_MODEL, make_tissue  # noqa: E402

import celltransformer as ct  # noqa: E402


class RecordReferenceCells(Callback):
    """Saves, per process, the reference cells of every training batch of every epoch."""

    def __init__(self, out: Path):
        self.out = out
        self.seen: dict[str, list[np.ndarray]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.setdefault(f"epoch_{trainer.current_epoch}", []).append(batch["reference_indices"].cpu().numpy())

    def on_train_end(self, trainer, pl_module):
        arrays = {epoch: np.concatenate(batches) for epoch, batches in self.seen.items()}
        np.savez(self.out / f"seen_rank{trainer.global_rank}.npz", **arrays)


def main(out: Path) -> None:
    scvi.settings.seed = 0
    scvi.settings.logging_dir = str(out / "scvi_log")
    adata = make_tissue(n_cells=400, n_sections=2, seed=1)
    ct.CellTransformer.setup_anndata(adata, layer="counts", cell_type_key="cell_type", library_key="section")
    model = ct.CellTransformer(adata, **TINY_MODEL)
    model.train(
        max_epochs=2,
        batch_size=16,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        callbacks=[RecordReferenceCells(out)],
        enable_progress_bar=False,
        plan_kwargs={"warmup_steps": 5},
    )
    if model.trainer.is_global_zero:
        np.save(out / "train_indices.npy", model.train_indices)
        model.save(out / "model", overwrite=True)
    model.embed(adata, out=out / "embedding.npy", accelerator="cpu", devices=2, strategy="ddp", progress_bar=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

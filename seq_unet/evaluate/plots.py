"""Plots of measured against predicted tracks along chromosomes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from seq_unet.io.atomic import atomic_path  # noqa: E402
from seq_unet.io.bigwig_read import open_bigwig, read_values  # noqa: E402
from seq_unet.io.binning import bin_means  # noqa: E402


def binned_track(path: str, chrom: str, size: int, resolution: int, chunk: int = 1 << 22) -> np.ndarray:
    """Bin means of a bigWig along a chromosome (NaN where no base has a value), read in pieces of whole bins."""
    step = max(chunk // resolution, 1) * resolution
    with open_bigwig(path) as bw:
        parts = [bin_means(read_values(bw, chrom, s, min(s + step, size), size), resolution)[0]
                 for s in range(0, size, step)]
    return np.concatenate(parts) if parts else np.zeros(0)


def plot_chromosomes(track: str, observed: str, predictions: dict[str, str], chroms: dict[str, int],
                     out_png: str | Path, resolution: int = 1000, pearson: dict | None = None) -> None:
    """One panel per chromosome: the measured track and each predictor's, at ``resolution``."""
    fig, axes = plt.subplots(len(chroms), 1, figsize=(12, 2.6 * len(chroms)), squeeze=False)
    styles = {"seq-unet": dict(color="tab:red", lw=1.2), "kmer_ridge": dict(color="tab:green", lw=0.8, alpha=0.8),
              "gc": dict(color="tab:gray", lw=0.8, alpha=0.6)}
    for ax, (chrom, size) in zip(axes[:, 0], chroms.items()):
        x = (np.arange(-(-size // resolution)) + 0.5) * resolution / 1e3
        ax.plot(x, binned_track(observed, chrom, size, resolution), color="black", lw=1.0, label="measured")
        for name, path in predictions.items():
            label = name
            if pearson and (name, chrom) in pearson:
                label += f" (r={pearson[(name, chrom)]:.2f})"
            ax.plot(x, binned_track(path, chrom, size, resolution), label=label, **styles.get(name, {}))
        ax.set_title(f"{track} on {chrom} ({resolution // 1000} kb bins)", fontsize=10, loc="left")
        ax.set_xlim(0, size / 1e3)
        ax.set_ylabel(track)
        ax.legend(fontsize=7, loc="upper right", ncol=4)
    axes[-1, 0].set_xlabel("position (kb)")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

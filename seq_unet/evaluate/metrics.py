"""Metrics of predicted against measured tracks, computed from bigWig files.

Both tracks are averaged into bins of ``resolution`` bases over the bases where
the measured track has a value (and that no blacklist region covers); a bin
counts if at least half its bases are measured. Pearson, Spearman and MSE are
computed per chromosome and pooled over all chromosomes of a split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from seq_unet.io.bigwig_read import open_bigwig, read_values
from seq_unet.io.binning import bin_means
from seq_unet.io.intervals import covered_mask

COLUMNS = ["predictor", "track", "split", "chrom", "resolution_bp", "pearson", "spearman", "mse", "n_bins"]


def bin_pair(pred: np.ndarray, obs: np.ndarray, resolution: int,
             min_valid_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Bin per-base ``pred`` and ``obs`` (NaN = unknown) over the bases where both are known.

    Returns the bin means of the bins with at least ``min_valid_fraction`` known bases.
    """
    valid = np.isfinite(obs) & np.isfinite(pred)
    p, keep = bin_means(pred, resolution, valid, min_valid_fraction=min_valid_fraction, dtype=np.float64)
    o, _ = bin_means(obs, resolution, valid, min_valid_fraction=min_valid_fraction, dtype=np.float64)
    return p[keep], o[keep]


def score(pred: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman, MSE and the number of bins (NaN correlations below 3 bins or zero variance)."""
    n = len(obs)
    if n < 3 or np.ptp(pred) == 0 or np.ptp(obs) == 0:
        r = rho = float("nan")
    else:
        r = float(stats.pearsonr(pred, obs)[0])
        rho = float(stats.spearmanr(pred, obs)[0])
    mse = float(np.mean((pred - obs) ** 2)) if n else float("nan")
    return {"pearson": r, "spearman": rho, "mse": mse, "n_bins": n}


def evaluate(predictions: dict[str, dict[str, str]], observed: dict[str, str], chrom_sizes: dict[str, int],
             split_of: dict[str, str], resolutions: list[int], blacklist=None) -> pd.DataFrame:
    """Score every predictor's bigWigs against the measured bigWigs.

    Args:
        predictions: ``{predictor: {track: bigWig path}}``.
        observed: ``{track: measured bigWig path}``.
        chrom_sizes: genome chromosome sizes (FASTA order).
        split_of: split of each chromosome.
        resolutions: bin sizes in bases.
        blacklist: optional PyRanges of regions to leave out.

    Returns:
        A table with :data:`COLUMNS`; ``chrom == "all"`` rows pool a split's chromosomes.
    """
    rows = []
    for track, obs_path in observed.items():
        obs_bw = open_bigwig(obs_path)
        obs_cache = {}
        for chrom, size in chrom_sizes.items():
            v = read_values(obs_bw, chrom, 0, size, size)
            if blacklist is not None:
                v[covered_mask(blacklist, chrom, 0, size)] = np.nan
            obs_cache[chrom] = v
        obs_bw.close()
        for predictor, paths in predictions.items():
            if track not in paths:
                continue
            pred_bw = open_bigwig(paths[track])
            pooled: dict[tuple[str, int], list] = {}
            for chrom, size in chrom_sizes.items():
                pred = read_values(pred_bw, chrom, 0, size, size)
                for res in resolutions:
                    p, o = bin_pair(pred, obs_cache[chrom], res)
                    rows.append({"predictor": predictor, "track": track, "split": split_of[chrom], "chrom": chrom,
                                 "resolution_bp": res, **score(p, o)})
                    pooled.setdefault((split_of[chrom], res), []).append((p, o))
            pred_bw.close()
            for (split, res), parts in pooled.items():
                p = np.concatenate([x[0] for x in parts])
                o = np.concatenate([x[1] for x in parts])
                rows.append({"predictor": predictor, "track": track, "split": split, "chrom": "all",
                             "resolution_bp": res, **score(p, o)})
    df = pd.DataFrame(rows, columns=COLUMNS)
    split_rank = {"test": 0, "val": 1, "train": 2}
    df["_s"] = df.split.map(split_rank)
    df["_c"] = df.chrom.map({c: i for i, c in enumerate(chrom_sizes)}).fillna(-1)
    df = df.sort_values(["track", "_s", "resolution_bp", "predictor", "_c"], kind="stable")
    return df.drop(columns=["_s", "_c"]).reset_index(drop=True)

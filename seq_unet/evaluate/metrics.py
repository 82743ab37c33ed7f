"""Metrics of predicted against measured tracks, computed from bigWig files.

Both tracks are averaged into bins of ``resolution`` bases over the bases where
the measured track has a value (and that no blacklist region covers); a bin
counts if at least half its bases are measured. Pearson, Spearman and MSE are
computed per chromosome and pooled over all chromosomes of a split.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pandas as pd
from scipy import stats

from seq_unet.io.bigwig_read import open_bigwig, read_values
from seq_unet.io.binning import bin_means
from seq_unet.io.intervals import covered_mask

CHUNK = 1 << 22  # bases read at a time
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


def _chunk_length(resolutions: list[int], chunk: int) -> int:
    """About ``chunk`` bases, a whole number of bins at every resolution."""
    step = math.lcm(*resolutions)
    return max(chunk // step, 1) * step


def _chrom_pairs(obs_bw, pred_bws: dict, chrom: str, size: int, resolutions: list[int], blacklist,
                 chunk: int) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """``{(predictor, resolution): (pred, obs)}``: :func:`bin_pair` of one chromosome, read in pieces of whole
    bins at every resolution (the same bins as from the whole chromosome at once)."""
    step = _chunk_length(resolutions, chunk)
    parts: dict[tuple[str, int], list] = {(name, res): [] for name in pred_bws for res in resolutions}
    for start in range(0, size, step):
        end = min(start + step, size)
        obs = read_values(obs_bw, chrom, start, end, size)
        if blacklist is not None:
            obs[covered_mask(blacklist, chrom, start, end)] = np.nan
        for name, bw in pred_bws.items():
            pred = read_values(bw, chrom, start, end, size)
            for res in resolutions:
                parts[(name, res)].append(bin_pair(pred, obs, res))
    empty = (np.zeros(0), np.zeros(0))
    return {key: tuple(map(np.concatenate, zip(*v))) if v else empty for key, v in parts.items()}


def _score_track(track: str, obs_path: str, preds: dict[str, str], chrom_sizes: dict[str, int],
                 split_of: dict[str, str], resolutions: list[int], blacklist, chunk: int) -> list[dict]:
    """The rows of one measured track: per chromosome, then pooled per split from the chromosomes' bins."""
    rows = []
    pooled: dict[tuple[str, str, int], list] = {}
    with contextlib.ExitStack() as stack:
        obs_bw = stack.enter_context(open_bigwig(obs_path))
        pred_bws = {name: stack.enter_context(open_bigwig(path)) for name, path in preds.items()}
        for chrom, size in chrom_sizes.items():
            pairs = _chrom_pairs(obs_bw, pred_bws, chrom, size, resolutions, blacklist, chunk)
            for (predictor, res), (p, o) in pairs.items():
                rows.append({"predictor": predictor, "track": track, "split": split_of[chrom], "chrom": chrom,
                             "resolution_bp": res, **score(p, o)})
                pooled.setdefault((predictor, split_of[chrom], res), []).append((p, o))
    for (predictor, split, res), parts in pooled.items():
        p = np.concatenate([x[0] for x in parts])
        o = np.concatenate([x[1] for x in parts])
        rows.append({"predictor": predictor, "track": track, "split": split, "chrom": "all", "resolution_bp": res,
                     **score(p, o)})
    return rows


def evaluate(predictions: dict[str, dict[str, str]], observed: dict[str, str], chrom_sizes: dict[str, int],
             split_of: dict[str, str], resolutions: list[int], blacklist=None, chunk: int = CHUNK) -> pd.DataFrame:
    """Score every predictor's bigWigs against the measured bigWigs.

    The tracks are read chromosome by chromosome in pieces of about ``chunk`` bases; only the bins are kept
    (for the pooled rows), so memory follows the number of bins, not the genome's bases.

    Args:
        predictions: ``{predictor: {track: bigWig path}}``.
        observed: ``{track: measured bigWig path}``.
        chrom_sizes: genome chromosome sizes (FASTA order).
        split_of: split of each chromosome.
        resolutions: bin sizes in bases.
        blacklist: optional PyRanges of regions to leave out.
        chunk: bases read at a time (rounded to whole bins at every resolution).

    Returns:
        A table with :data:`COLUMNS`; ``chrom == "all"`` rows pool a split's chromosomes.
    """
    rows = []
    for track, obs_path in observed.items():
        preds = {name: paths[track] for name, paths in predictions.items() if track in paths}
        rows += _score_track(track, obs_path, preds, chrom_sizes, split_of, resolutions, blacklist, chunk)
    df = pd.DataFrame(rows, columns=COLUMNS)
    split_rank = {"test": 0, "val": 1, "train": 2}
    df["_s"] = df.split.map(split_rank)
    df["_c"] = df.chrom.map({c: i for i, c in enumerate(chrom_sizes)}).fillna(-1)
    df = df.sort_values(["track", "_s", "resolution_bp", "predictor", "_c"], kind="stable")
    return df.drop(columns=["_s", "_c"]).reset_index(drop=True)

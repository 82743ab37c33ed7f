"""Simple sequence baselines that give the model's numbers context.

``gc``: a linear fit of the track on the GC fraction of each bin.
``kmer_ridge``: ridge regression on canonical 4-mer frequencies of each bin and
of its surrounding 5-, 21- and 61-bin context. Both are fitted on the training
chromosomes only; the ridge penalty is chosen on the validation chromosomes.
Predictions are written as bigWigs (constant within each bin) so that
``seq-unet evaluate`` scores them exactly like the model's.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d
from sklearn.linear_model import Ridge

from seq_unet.errors import InputError
from seq_unet.io.bases import UNKNOWN
from seq_unet.io.bigwig_read import open_bigwig, read_values
from seq_unet.io.bigwig_write import BigWigWriter
from seq_unet.io.binning import bin_means
from seq_unet.io.genome import Genome
from seq_unet.io.names import BASELINES, baseline_name, bigwig

log = logging.getLogger(__name__)

K = 4
CONTEXTS = (5, 21, 61)


def _canonical_index(k: int = K) -> np.ndarray:
    """Map each k-mer index (base-4, A=0) to the column of its canonical (strand-free) k-mer."""
    cols: dict[int, int] = {}
    out = np.empty(4**k, dtype=np.int64)
    for idx, kmer in enumerate(itertools.product(range(4), repeat=k)):
        rc = tuple(3 - b for b in reversed(kmer))
        rc_idx = sum(b * 4 ** (k - 1 - i) for i, b in enumerate(rc))
        key = min(idx, rc_idx)
        out[idx] = cols.setdefault(key, len(cols))
    return out


def bin_features(codes: np.ndarray, bin_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin GC fraction ``(n_bins,)`` and canonical 4-mer frequencies ``(n_bins, 136)``."""
    n = len(codes)
    nb = -(-n // bin_size)
    known = codes != UNKNOWN
    gc = (codes == 1) | (codes == 2)
    bins = np.arange(n) // bin_size
    gc_frac, _ = bin_means(gc, bin_size, known, empty=0.0, dtype=np.float64)
    canon = _canonical_index()
    ncol = canon.max() + 1
    counts = np.zeros((nb, ncol))
    if n >= K:
        idx = np.zeros(n - K + 1, dtype=np.int64)
        ok = np.ones(n - K + 1, dtype=bool)
        for j in range(K):
            c = codes[j : n - K + 1 + j]
            idx = idx * 4 + np.minimum(c, 3)
            ok &= c != UNKNOWN
        flat = bins[: n - K + 1][ok] * ncol + canon[idx[ok]]
        counts = np.bincount(flat, minlength=nb * ncol).reshape(nb, ncol).astype(np.float64)
    freq = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    return gc_frac, freq


def _design(freq: np.ndarray) -> np.ndarray:
    return np.hstack([freq] + [uniform_filter1d(freq, c, axis=0, mode="nearest") for c in CONTEXTS])


def fit_baselines(fasta: str, tracks: dict[str, str], split_of: dict[str, str], out_dir: str | Path,
                  bin_size: int = 1000, alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)) -> dict:
    """Fit both baselines per track and write ``<out_dir>/<track>.<baseline>.bw``.

    Returns ``{baseline: {track: path}}``.
    """
    genome = Genome(fasta)
    feats = {}
    for chrom, size in genome.sizes.items():
        gc, freq = bin_features(genome.codes(chrom, 0, size), bin_size)
        feats[chrom] = (gc, _design(freq))
    out_dir = Path(out_dir)
    written: dict[str, dict[str, Path]] = {name: {} for name in BASELINES}
    for track, path in tracks.items():
        bw = open_bigwig(path)
        y = {}
        for chrom, size in genome.sizes.items():
            means, kept = bin_means(read_values(bw, chrom, 0, size, size), bin_size, min_valid_fraction=0.5)
            y[chrom] = np.where(kept, means, np.nan)
        bw.close()

        def stack(split: str):
            chroms = [c for c in genome.sizes if split_of[c] == split]
            g = np.concatenate([feats[c][0] for c in chroms])
            X = np.vstack([feats[c][1] for c in chroms])
            t = np.concatenate([y[c] for c in chroms])
            ok = np.isfinite(t)
            return g[ok], X[ok], t[ok]

        g_tr, X_tr, y_tr = stack("train")
        if len(y_tr) < 10:
            raise InputError(f"track {track!r} has too few measured bins on the training chromosomes to fit baselines")
        slope, intercept = np.polyfit(g_tr, y_tr, 1)
        g_va, X_va, y_va = stack("val")
        best = None
        for a in alphas:
            m = Ridge(alpha=a).fit(X_tr, y_tr)
            r = np.corrcoef(m.predict(X_va), y_va)[0, 1] if len(y_va) > 2 else 0.0
            if best is None or r > best[0]:
                best = (r, a, m)
        log.info("%s: kmer_ridge alpha %.3g (validation Pearson %.3f)", track, best[1], best[0])
        models = {"gc": lambda c: intercept + slope * feats[c][0], "kmer_ridge": lambda c: best[2].predict(feats[c][1])}
        for name, predict in models.items():
            dst = out_dir / bigwig(baseline_name(track, name))
            with BigWigWriter(dst, genome.sizes, precision=1e-4) as w:
                for chrom, size in genome.sizes.items():
                    w.add(chrom, np.repeat(predict(chrom).astype(np.float32), bin_size)[:size])
            written[name][track] = dst
    return written

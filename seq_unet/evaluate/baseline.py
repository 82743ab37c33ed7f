"""Simple sequence baselines that give the model's numbers context.

``gc``: a linear fit of the track on the GC fraction of each bin.
``kmer_ridge``: ridge regression on canonical 4-mer frequencies of each bin and
of its surrounding 5-, 21- and 61-bin context. Both are fitted on the training
chromosomes only; the ridge penalty is chosen on the validation chromosomes.
Predictions are written as bigWigs (constant within each bin) so that
``seq-unet evaluate`` scores them exactly like the model's.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from pathlib import Path

import numpy as np
from scipy import linalg
from scipy.ndimage import uniform_filter1d

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
CHUNK = 1 << 22  # bases read and counted at a time
BLOCK = 1 << 14  # bins added to the sufficient statistics at a time


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


def _kmer_counts(codes: np.ndarray, n: int, bin_size: int) -> np.ndarray:
    """Counts ``(ceil(n / bin_size), 136)`` of the canonical 4-mers that start at ``codes[:n]`` and have no
    unknown base; ``codes`` holds ``n + K - 1`` codes (the last k-mers' ends; unknown past a chromosome's end)."""
    canon = _canonical_index()
    ncol = canon.max() + 1
    nb = -(-n // bin_size)
    idx = np.zeros(n, dtype=np.int64)
    ok = np.ones(n, dtype=bool)
    for j in range(K):
        c = codes[j : n + j]
        idx = idx * 4 + np.minimum(c, 3)
        ok &= c != UNKNOWN
    flat = (np.flatnonzero(ok) // bin_size) * ncol + canon[idx[ok]]
    return np.bincount(flat, minlength=nb * ncol).reshape(nb, ncol).astype(np.float64)


def _gc_and_counts(codes: np.ndarray, n: int, bin_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin GC fraction of ``codes[:n]`` and :func:`_kmer_counts`."""
    head = codes[:n]
    known = head != UNKNOWN
    gc_frac, _ = bin_means((head == 1) | (head == 2), bin_size, known, empty=0.0, dtype=np.float64)
    return gc_frac, _kmer_counts(codes, n, bin_size)


def _frequencies(counts: np.ndarray) -> np.ndarray:
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def bin_features(codes: np.ndarray, bin_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin GC fraction ``(n_bins,)`` and canonical 4-mer frequencies ``(n_bins, 136)``."""
    padded = np.concatenate([codes, np.full(K - 1, UNKNOWN, dtype=codes.dtype)])
    gc_frac, counts = _gc_and_counts(padded, len(codes), bin_size)
    return gc_frac, _frequencies(counts)


def chrom_features(genome: Genome, chrom: str, bin_size: int,
                   chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bin_features` of a whole chromosome, read and counted in pieces of about ``chunk`` bases (whole
    bins), so that the per-base arrays are those of one piece; the result is the same."""
    size = genome.sizes[chrom]
    step = max(chunk // bin_size, 1) * bin_size
    gcs, counts = [], []
    for start in range(0, size, step):
        n = min(step, size - start)
        g, c = _gc_and_counts(genome.codes(chrom, start, start + n + K - 1), n, bin_size)
        gcs.append(g)
        counts.append(c)
    if not gcs:
        return np.zeros(0), np.zeros((0, _canonical_index().max() + 1))
    return np.concatenate(gcs), _frequencies(np.concatenate(counts))


def _design(freq: np.ndarray) -> np.ndarray:
    return np.hstack([freq] + [uniform_filter1d(freq, c, axis=0, mode="nearest") for c in CONTEXTS])


class Moments:
    """Sufficient statistics of a linear least-squares fit of ``y`` on the columns of ``X``, added up row block by
    row block (chromosome by chromosome): the count, the sums and the cross products, in float64, about a shift
    (the first block's means) that keeps the centred cross products free of cancellation."""

    def __init__(self, n_features: int):
        self.n = 0
        self.shift_x = np.zeros(n_features)
        self.shift_y = 0.0
        self.sx = np.zeros(n_features)
        self.sy = 0.0
        self.sxx = np.zeros((n_features, n_features))
        self.sxy = np.zeros(n_features)
        self.syy = 0.0

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        """Add the rows ``X`` ``(n, n_features)`` with targets ``y`` ``(n,)``."""
        if not len(y):
            return
        if self.n == 0:
            self.shift_x, self.shift_y = X.mean(0), float(y.mean())
        dx, dy = X - self.shift_x, y - self.shift_y
        self.n += len(y)
        self.sx += dx.sum(0)
        self.sy += float(dy.sum())
        self.sxx += dx.T @ dx
        self.sxy += dx.T @ dy
        self.syy += float(dy @ dy)

    def centred(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The cross products about the means: ``Xc'Xc``, ``Xc'yc``, ``yc'yc``."""
        mx, my = self.sx / self.n, self.sy / self.n
        return (self.sxx - self.n * np.outer(mx, mx), self.sxy - self.n * mx * my, self.syy - self.n * my * my)

    def means(self) -> tuple[np.ndarray, float]:
        return self.shift_x + self.sx / self.n, self.shift_y + self.sy / self.n

    def ridge(self, alpha: float) -> tuple[np.ndarray, float]:
        """Coefficients and intercept of ridge regression with an unpenalised intercept (``alpha=0``: least
        squares), as scikit-learn's ``Ridge(alpha)`` and ``np.polyfit(x, y, 1)`` give them."""
        xx, xy, _ = self.centred()
        coef = linalg.solve(xx + alpha * np.eye(len(xy)), xy, assume_a="pos")
        mx, my = self.means()
        return coef, float(my - mx @ coef)

    def pearson(self, coef: np.ndarray) -> float:
        """Pearson correlation of the predictions ``X @ coef`` (plus any intercept) with ``y``."""
        xx, xy, yy = self.centred()
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(coef @ xy / np.sqrt((coef @ xx @ coef) * yy))


def _targets(bw, chrom: str, size: int, bin_size: int, chunk: int = CHUNK) -> np.ndarray:
    """A track's means in bins of ``bin_size`` along ``chrom`` (NaN in bins under half measured), read in pieces."""
    step = max(chunk // bin_size, 1) * bin_size
    parts = []
    for start in range(0, size, step):
        end = min(start + step, size)
        means, kept = bin_means(read_values(bw, chrom, start, end, size), bin_size, min_valid_fraction=0.5)
        parts.append(np.where(kept, means, np.nan))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _accumulate(genome: Genome, tracks: dict[str, str], split_of: dict[str, str], bin_size: int) -> dict:
    """One pass over the training and validation chromosomes: per track, the :class:`Moments` of the gc fit and
    of the k-mer design on the training chromosomes, and of the k-mer design on the validation chromosomes."""
    ncol = len(CONTEXTS) + 1
    ncol *= _canonical_index().max() + 1
    stats = {t: {"gc": Moments(1), "train": Moments(ncol), "val": Moments(ncol)} for t in tracks}
    bws = {t: open_bigwig(path) for t, path in tracks.items()}
    try:
        for chrom, size in genome.sizes.items():
            split = split_of[chrom]
            if split not in ("train", "val"):
                continue
            gc, freq = chrom_features(genome, chrom, bin_size)
            X = _design(freq)
            for t, bw in bws.items():
                y = _targets(bw, chrom, size, bin_size)
                for lo in range(0, len(y), BLOCK):  # rows a block at a time: no copy of the whole design
                    rows = slice(lo, lo + BLOCK)
                    ok = np.isfinite(y[rows])
                    yb = y[rows][ok].astype(np.float64)
                    stats[t][split].add(X[rows][ok], yb)
                    if split == "train":
                        stats[t]["gc"].add(gc[rows][ok, None], yb)
    finally:
        for bw in bws.values():
            bw.close()
    return stats


def _fit(track: str, stats: dict, alphas: tuple[float, ...]) -> dict:
    """``{baseline: (coefficients, intercept)}`` of one track; the ridge penalty with the best validation
    Pearson (the first of equals; no validation bins: the first penalty)."""
    if stats["train"].n < 10:
        raise InputError(f"track {track!r} has too few measured bins on the training chromosomes to fit baselines "
                         f"({stats['train'].n})")
    best = None
    for a in alphas:
        fit = stats["train"].ridge(a)
        r = stats["val"].pearson(fit[0]) if stats["val"].n > 2 else 0.0
        if best is None or r > best[0]:
            best = (r, a, fit)
    log.info("%s: kmer_ridge alpha %.3g (validation Pearson %.3f)", track, best[1], best[0])
    return {"gc": stats["gc"].ridge(0.0), "kmer_ridge": best[2]}


def fit_baselines(fasta: str, tracks: dict[str, str], split_of: dict[str, str], out_dir: str | Path,
                  bin_size: int = 1000, alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)) -> dict:
    """Fit both baselines per track and write ``<out_dir>/<track>.<baseline>.bw``.

    The fit streams: one pass over the training and validation chromosomes adds up sufficient statistics
    (:class:`Moments`), a second computes each chromosome's features again and writes its predictions.
    Memory follows the longest chromosome, not the genome.

    Returns ``{baseline: {track: path}}``.
    """
    genome = Genome(fasta)
    stats = _accumulate(genome, tracks, split_of, bin_size)
    fits = {t: _fit(t, stats[t], alphas) for t in tracks}
    out_dir = Path(out_dir)
    written = {name: {t: out_dir / bigwig(baseline_name(t, name)) for t in tracks} for name in BASELINES}
    with contextlib.ExitStack() as stack:
        writers = {(name, t): stack.enter_context(BigWigWriter(path, genome.sizes, precision=1e-4))
                   for name, paths in written.items() for t, path in paths.items()}
        for chrom in genome.sizes:
            gc, freq = chrom_features(genome, chrom, bin_size)
            inputs = {"gc": gc[:, None], "kmer_ridge": _design(freq)}
            for (name, t), w in writers.items():
                coef, intercept = fits[t][name]
                pred = (inputs[name] @ coef + intercept).astype(np.float32)
                w.add_bins(chrom, pred, bin_size)
    return written

"""bigWig tracks: reading measured values, checking them against the genome,
and writing per-base predictions as compact, browser-ready bigWigs.

Missing values (no entry in the bigWig, NaN or infinite) are returned as NaN
and always mean "unknown", never 0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyBigWig

from seq_unet.errors import InputError
from seq_unet.io.atomic import atomic_path

log = logging.getLogger(__name__)

# Default rounding step of written values, in the track's units: 0.005 is under
# 0.4% of the 0.87-2.16 range of relative-copy-number replication timing, and
# turns a smooth prediction into runs of tens of bases.
DEFAULT_PRECISION = 0.005


def open_bigwig(path: str | os.PathLike):
    """Open a bigWig for reading, with a clear error if it is missing or unreadable."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"track file {path} does not exist")
    try:
        bw = pyBigWig.open(path)
    except (RuntimeError, OSError) as exc:
        raise InputError(f"track file {path} is not a readable bigWig ({exc})") from exc
    if bw is None or not bw.isBigWig():
        raise InputError(f"track file {path} is not a bigWig file")
    return bw


def track_chrom_sizes(path: str | os.PathLike) -> dict[str, int]:
    bw = open_bigwig(path)
    try:
        return dict(bw.chroms())
    finally:
        bw.close()


def check_tracks_match_genome(genome_sizes: dict[str, int], tracks: dict[str, str]) -> dict[str, list[str]]:
    """Check that each track uses the genome's chromosome names and lengths.

    Returns, per track, the genome chromosomes the track lacks (they will be
    masked). Raises :class:`InputError` listing both name sets when a track
    names chromosomes the FASTA does not have, and when lengths disagree.
    """
    missing: dict[str, list[str]] = {}
    for name, path in tracks.items():
        sizes = track_chrom_sizes(path)
        unknown = [c for c in sizes if c not in genome_sizes]
        if unknown:
            raise InputError(
                f"track {name!r} ({path}) names chromosomes that are not in the FASTA: {unknown}.\n"
                f"  FASTA chromosomes: {list(genome_sizes)}\n"
                f"  track chromosomes: {list(sizes)}\n"
                "Rename the chromosomes in one of the files so they match."
            )
        wrong = {c: (sizes[c], genome_sizes[c]) for c in sizes if sizes[c] != genome_sizes[c]}
        if wrong:
            detail = ", ".join(f"{c}: track {t} bp vs FASTA {g} bp" for c, (t, g) in wrong.items())
            raise InputError(
                f"track {name!r} ({path}) was made for another assembly: chromosome lengths differ ({detail})"
            )
        missing[name] = [c for c in genome_sizes if c not in sizes]
        if missing[name]:
            n = sum(genome_sizes[c] for c in missing[name])
            log.warning("track %s (%s) has no values on %s: %d bases masked", name, path, missing[name], n)
    return missing


def read_values(bw, chrom: str, start: int, end: int, size: int) -> np.ndarray:
    """Per-base values of ``chrom:[start, end)`` as float32; NaN where unknown.

    ``size`` is the chromosome's length in the genome; positions beyond it or
    on a chromosome the bigWig lacks are NaN.
    """
    out = np.full(end - start, np.nan, dtype=np.float32)
    lo, hi = max(start, 0), min(end, size)
    if hi > lo and chrom in bw.chroms():
        vals = np.asarray(bw.values(chrom, lo, hi, numpy=True), dtype=np.float32)
        vals[~np.isfinite(vals)] = np.nan
        out[lo - start : hi - start] = vals
    return out


def run_length_encode(values: np.ndarray, precision: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal values after rounding to ``precision``.

    Args:
        values: float array ``(length,)``; NaN (and +-inf) mark "no data" and are skipped.
        precision: rounding step (0: exact float32 values); every stored value is
            within ``precision / 2`` of the input (plus float32 representation error).

    Returns:
        ``(starts, ends, values)`` of the runs, int64/int64/float32, no-data runs removed.
    """
    # Runs are found on the value in whole steps of `precision`: float32 keeps it one
    # pass at memory speed and is exact for |value / precision| < 2**24; +inf is one
    # sentinel for all no-data bases, so a stretch of them is one run (NaN != NaN).
    v = np.asarray(values, dtype=np.float32)
    q = np.rint(v * np.float32(1 / precision)) if precision > 0 else v.copy()
    q[~np.isfinite(q)] = np.inf
    n = len(q)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(q[1:], q[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n)
    keep = q[starts] != np.inf
    starts, ends = starts[keep], ends[keep]
    vals = q[starts].astype(np.float64) * precision if precision > 0 else q[starts]
    return starts, ends, vals.astype(np.float32)


class BigWigWriter:
    """Stream per-base tracks into a bigWig, chromosome by chromosome.

    The header lists the chromosomes in the order given (FASTA order) with
    their true lengths; zoom levels are written (IGV needs them). Values are
    rounded to ``precision`` and stored as runs of equal values, or, on a
    chromosome where runs average under 3 bases, as one value per base. The file is
    written under a temporary name and appears under ``path`` only on success.

    Use as a context manager; call :meth:`add` once per chromosome, in order.
    """

    def __init__(self, path: str | os.PathLike, chrom_sizes: dict[str, int],
                 precision: float = DEFAULT_PRECISION, max_zooms: int = 10):
        self.path = Path(path)
        self.sizes = dict(chrom_sizes)
        self.precision = precision
        self.max_zooms = max_zooms
        self._ctx = None
        self._bw = None
        self._order = list(self.sizes)
        self._next = 0

    def __enter__(self) -> BigWigWriter:
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._bw = pyBigWig.open(str(tmp), "w")
        if self._bw is None:
            raise InputError(f"cannot write bigWig {self.path}")
        self._bw.addHeader(list(self.sizes.items()), maxZooms=self.max_zooms)
        return self

    def add(self, chrom: str, values: np.ndarray) -> None:
        """Add the per-base values of one whole chromosome (NaN = no data)."""
        expected = self._order[self._next] if self._next < len(self._order) else None
        if chrom != expected:
            raise ValueError(f"chromosome {chrom!r} added out of order; expected {expected!r}")
        if len(values) != self.sizes[chrom]:
            raise ValueError(f"{chrom}: got {len(values)} values for a chromosome of {self.sizes[chrom]} bp")
        self._next += 1
        starts, ends, vals = run_length_encode(values, self.precision)
        if not len(starts):
            return  # no value anywhere on this chromosome: no entries
        if len(starts) * 3 <= (ends - starts).sum():
            # runs of 3 bases or more on average: bedGraph entries (12 bytes a run) are
            # smaller than per-base steps (4 bytes a base); numpy arrays go to libBigWig
            # without a Python object per entry
            self._bw.addEntries([chrom] * len(starts), starts, ends=ends, values=vals)
            return
        # a signal that changes from base to base: the runs expanded into fixed-step
        # entries, one call per stretch of consecutive runs (no-data gaps between them)
        breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
        for lo, hi in zip(np.append(0, breaks), np.append(breaks, len(starts))):
            self._bw.addEntries(chrom, int(starts[lo]), values=np.repeat(vals[lo:hi], ends[lo:hi] - starts[lo:hi]),
                                span=1, step=1)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._bw.close()
        finally:
            if exc_type is None and self._next != len(self._order):
                missing = self._order[self._next :]
                err = ValueError(f"bigWig {self.path} closed before chromosomes {missing} were written")
                self._ctx.__exit__(type(err), err, None)
                raise err
            self._ctx.__exit__(exc_type, exc, tb)


def write_bigwig(path: str | os.PathLike, chrom_sizes: dict[str, int],
                 tracks: Iterable[tuple[str, np.ndarray]], precision: float = DEFAULT_PRECISION) -> None:
    """Write ``(chrom, values)`` pairs (FASTA order, whole chromosomes) to ``path``."""
    with BigWigWriter(path, chrom_sizes, precision) as w:
        for chrom, values in tracks:
            w.add(chrom, values)

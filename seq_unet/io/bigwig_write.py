"""Writing per-base predictions as compact, browser-ready bigWigs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyBigWig

from seq_unet.errors import InputError
from seq_unet.io.atomic import atomic_path, ensure_free_space

# Default rounding step of written values, in the track's units: 0.005 is under
# 0.4% of the 0.87-2.16 range of relative-copy-number replication timing, and
# turns a smooth prediction into runs of tens of bases.
DEFAULT_PRECISION = 0.005


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

    Use as a context manager; call :meth:`add` once per chromosome, in order, or
    give a chromosome in consecutive parts with :meth:`add_part` (a run of equal
    values that crosses from one part to the next is still stored as one run).
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
        self._written = 0  # bytes of data entries added so far, before compression
        self._part = None  # a chromosome given in parts: (name, bases added, the last run held back or None)

    def __enter__(self) -> BigWigWriter:
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._tmp = tmp
        self._bw = pyBigWig.open(str(tmp), "w")
        if self._bw is None:
            raise InputError(f"cannot write bigWig {self.path}")
        self._bw.addHeader(list(self.sizes.items()), maxZooms=self.max_zooms)
        return self

    def add(self, chrom: str, values: np.ndarray) -> None:
        """Add the per-base values of one whole chromosome (NaN = no data)."""
        self._check(chrom, len(values), self.sizes[chrom], "values")
        self._add_runs(chrom, *run_length_encode(values, self.precision))

    def add_part(self, chrom: str, start: int, values: np.ndarray) -> None:
        """Add the per-base values of ``chrom:[start, start + len(values))`` (NaN = no data): the parts of a
        chromosome in order, the first at 0, each where the previous ended, the last at the chromosome's end.

        The written runs are those of :meth:`add` given the whole chromosome: the last run of a part is held
        back until the next part shows whether it goes on.
        """
        size, end = self.sizes[chrom], start + len(values)
        if self._part is None:
            if start != 0:
                raise ValueError(f"{chrom}: its first part must start at 0, not {start}")
            self._expect(chrom)  # counted when its last part is in
            self._part = (chrom, 0, None)
        name, done, held = self._part
        if chrom != name or start != done or end > size:
            raise ValueError(f"part {chrom}:{start}-{end} does not continue {name}:0-{done} of {size} bp")
        starts, ends, vals = run_length_encode(values, self.precision)
        starts, ends = starts + start, ends + start
        if held is not None:
            if len(starts) and starts[0] == held[1] and vals[0] == held[2]:
                starts[0] = held[0]  # the held run goes on
            else:
                self._add_runs(chrom, np.array([held[0]]), np.array([held[1]]), np.array([held[2]], np.float32))
        if end == size:
            self._add_runs(chrom, starts, ends, vals)
            self._part = None
            self._next += 1
            return
        held = None
        if len(starts) and ends[-1] == end:  # the last run may go on in the next part
            held = (int(starts[-1]), int(ends[-1]), vals[-1])
            starts, ends, vals = starts[:-1], ends[:-1], vals[:-1]
        self._add_runs(chrom, starts, ends, vals)
        self._part = (chrom, end, held)

    def add_bins(self, chrom: str, values: np.ndarray, bin_size: int) -> None:
        """Add one whole chromosome of values constant within bins of ``bin_size`` bases (the last bin ends at the
        chromosome's end): the same file as :meth:`add` of the values repeated per base, without per-base arrays."""
        size = self.sizes[chrom]
        self._check(chrom, len(values), -(-size // bin_size), f"bins of {bin_size} bp")
        starts, ends, vals = run_length_encode(values, self.precision)
        self._add_runs(chrom, starts * bin_size, np.minimum(ends * bin_size, size), vals)

    def _expect(self, chrom: str) -> None:
        """Raise unless ``chrom`` is the chromosome that comes next."""
        expected = self._order[self._next] if self._next < len(self._order) else None
        if chrom != expected:
            raise ValueError(f"chromosome {chrom!r} added out of order; expected {expected!r}")

    def _check(self, chrom: str, got: int, want: int, what: str) -> None:
        self._expect(chrom)
        if got != want:
            raise ValueError(f"{chrom}: got {got} {what} for a chromosome of {self.sizes[chrom]} bp")
        self._next += 1

    def _add_runs(self, chrom: str, starts: np.ndarray, ends: np.ndarray, vals: np.ndarray) -> None:
        if not len(starts):
            return  # no value anywhere on this chromosome: no entries
        per_base = len(starts) * 3 > (ends - starts).sum()
        size = int((ends - starts).sum()) * 4 if per_base else len(starts) * 12
        # libBigWig retries a failed write forever, so a full disk must be caught before it
        # writes: these entries (compression only shrinks them) and their share of zoom levels
        self._written += size
        ensure_free_space(self._tmp.parent, 2 * size + (1 << 20), self.path)
        if not per_base:
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
        error = None
        if exc_type is None and (self._next != len(self._order) or self._part is not None):
            error = ValueError(f"bigWig {self.path} closed before chromosomes {self._order[self._next:]} were written")
        elif exc_type is None:
            try:  # closing writes the zoom levels and the index
                ensure_free_space(self._tmp.parent, self._written // 2 + (1 << 20), self.path)
            except InputError as err:
                error = err
        if exc_type is None and error is None:
            try:
                self._bw.close()
            except BaseException as err:
                self._ctx.__exit__(type(err), err, err.__traceback__)
                raise
            self._ctx.__exit__(None, None, None)
            return
        self._discard()
        if error is not None:
            self._ctx.__exit__(type(error), error, None)
            raise error
        self._ctx.__exit__(exc_type, exc, tb)

    def _discard(self) -> None:
        """Close an unfinished file without letting libBigWig write to the disk.

        Closing a bigWig opened for writing writes its zoom levels and index
        (reading back what it wrote); on a full disk libBigWig would retry that
        forever. The file is about to be deleted anyway, so (on Linux) its
        contents are first moved to an in-memory file that takes its descriptor.
        """
        target = str(self._tmp.resolve())
        fds = Path("/proc/self/fd")
        if hasattr(os, "memfd_create") and fds.is_dir():
            for link in fds.iterdir():
                try:
                    if os.readlink(link) != target:
                        continue
                    fd = int(link.name)
                    pos = os.lseek(fd, 0, os.SEEK_CUR)
                    mem = os.memfd_create("seq-unet-discarded-bigwig")
                    os.lseek(fd, 0, os.SEEK_SET)
                    while chunk := os.read(fd, 1 << 20):
                        os.write(mem, chunk)
                    os.lseek(mem, pos, os.SEEK_SET)
                    os.dup2(mem, fd)
                    os.close(mem)
                except OSError:
                    continue
        self._bw.close()


def write_bigwig(path: str | os.PathLike, chrom_sizes: dict[str, int],
                 tracks: Iterable[tuple[str, np.ndarray]], precision: float = DEFAULT_PRECISION) -> None:
    """Write ``(chrom, values)`` pairs (FASTA order, whole chromosomes) to ``path``."""
    with BigWigWriter(path, chrom_sizes, precision) as w:
        for chrom, values in tracks:
            w.add(chrom, values)

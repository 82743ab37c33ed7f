"""bigWig tracks: reading measured values and checking them against the genome.

Missing values (no entry in the bigWig, NaN or infinite) are returned as NaN
and always mean "unknown", never 0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Self

import numpy as np
import pyBigWig

from seq_unet.errors import InputError
from seq_unet.io.bigwig_check import check_bigwig_layout

log = logging.getLogger(__name__)


class BigWigFile:
    """A bigWig open for reading: the pyBigWig handle plus its path, so errors can name the file.

    ``chroms()`` is read once; other attributes are the handle's.
    """

    def __init__(self, path: str, handle):
        self.path = path
        self._bw = handle
        self._chroms = dict(handle.chroms())

    def chroms(self, chrom: str | None = None):
        return dict(self._chroms) if chrom is None else self._chroms.get(chrom)

    def values(self, chrom: str, start: int, end: int, numpy: bool = False):
        return self._bw.values(chrom, start, end, numpy=numpy)

    def close(self) -> None:
        self._bw.close()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._bw, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_bigwig(path: str | os.PathLike) -> BigWigFile:
    """Open a bigWig for reading, with a clear error if it is missing, not a bigWig, or damaged."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"track file {path} does not exist")
    check_bigwig_layout(path)
    try:
        bw = pyBigWig.open(path)
    except (RuntimeError, OSError) as exc:
        raise InputError(f"track file {path} is not a readable bigWig ({exc})") from exc
    if bw is None or not bw.isBigWig():
        raise InputError(f"track file {path} is not a bigWig file")
    return BigWigFile(path, bw)


def open_bigwigs(tracks: dict[str, str]) -> dict[str, BigWigFile]:
    """Open every track (name -> path); if one fails, close those already open and raise."""
    opened: dict[str, BigWigFile] = {}
    try:
        for name, path in tracks.items():
            opened[name] = open_bigwig(path)
    except BaseException:
        for bw in opened.values():
            bw.close()
        raise
    return opened


def track_chrom_sizes(path: str | os.PathLike) -> dict[str, int]:
    with open_bigwig(path) as bw:
        return bw.chroms()


def _abbreviated(names: Iterable[str], limit: int = 10, head: int = 6) -> str:
    """``names`` as a list, or its first ``head`` names and a count when longer than ``limit``."""
    names = list(names)
    if len(names) <= limit:
        return repr(names)
    return "[" + ", ".join(map(repr, names[:head])) + f", ... and {len(names) - head} more ({len(names)} in all)]"


_PREFIXES = ("chr", "Chr", "CHR")
_MITO = {"M": ("MT", "chrMT"), "MT": ("M", "chrM"), "chrM": ("MT",), "chrMT": ("M",)}


def _renaming_hint(unknown: list[str], genome_names: Iterable[str]) -> str:
    """Say so when adding or removing a 'chr' prefix would give the FASTA's names."""
    fasta = set(genome_names)
    added = {u: f for u in unknown for f in (p + u for p in _PREFIXES) if f in fasta}
    removed = {u: u[3:] for u in unknown if u[:3] in _PREFIXES and u[3:] in fasta}
    mito = {u: f for u in unknown if u not in added and u not in removed
            for f in _MITO.get(u, ()) if f in fasta}
    best, how = max(((added, "the FASTA's names have a 'chr' prefix that the track's lack"),
                     (removed, "the track's names have a 'chr' prefix that the FASTA's lack")),
                    key=lambda x: len(x[0]))
    if not best:
        return ""
    best = {**best, **mito}
    shown = list(best)[:4]
    more = ", ..." if len(best) > len(shown) else ""
    track = ", ".join(map(repr, shown)) + more
    fa = ", ".join(repr(best[u]) for u in shown) + more
    share = "" if len(best) == len(unknown) else f" ({len(best)} of the {len(unknown)} unknown names)"
    return (f"\nThe track names chromosomes {track} where the FASTA has {fa}: the names differ by a 'chr' "
            f"prefix{share}; {how}.")


def check_tracks_match_genome(genome_sizes: dict[str, int], tracks: dict[str, str]) -> dict[str, list[str]]:
    """Check that each track uses the genome's chromosome names and lengths.

    Returns, per track, the genome chromosomes the track lacks (they will be
    masked). Raises :class:`InputError` listing both name sets (abbreviated when
    long, with a hint when the names differ by a 'chr' prefix) when a track names
    chromosomes the FASTA does not have, and when lengths disagree.
    """
    missing: dict[str, list[str]] = {}
    for name, path in tracks.items():
        sizes = track_chrom_sizes(path)
        unknown = [c for c in sizes if c not in genome_sizes]
        if unknown:
            raise InputError(
                f"track {name!r} ({path}) names chromosomes that are not in the FASTA: {_abbreviated(unknown)}.\n"
                f"  FASTA chromosomes: {_abbreviated(genome_sizes)}\n"
                f"  track chromosomes: {_abbreviated(sizes)}"
                f"{_renaming_hint(unknown, genome_sizes)}\n"
                "Rename the chromosomes in one of the files so they match."
            )
        wrong = {c: (sizes[c], genome_sizes[c]) for c in sizes if sizes[c] != genome_sizes[c]}
        if wrong:
            detail = ", ".join(f"{c}: track {t} bp vs FASTA {g} bp" for c, (t, g) in list(wrong.items())[:5])
            if len(wrong) > 5:
                detail += f", ... and {len(wrong) - 5} more"
            raise InputError(
                f"track {name!r} ({path}) was made for another assembly: chromosome lengths differ ({detail})"
            )
        missing[name] = [c for c in genome_sizes if c not in sizes]
        if missing[name]:
            n = sum(genome_sizes[c] for c in missing[name])
            log.warning("track %s (%s) has no values on %d chromosome(s) %s: %d bases masked", name, path,
                        len(missing[name]), _abbreviated(missing[name]), n)
    return missing


def read_values(bw, chrom: str, start: int, end: int, size: int) -> np.ndarray:
    """Per-base values of ``chrom:[start, end)`` as float32; NaN where unknown.

    ``size`` is the chromosome's length in the genome; positions beyond it or
    on a chromosome the bigWig lacks are NaN.

    Raises:
        InputError: the track's chromosome is shorter than ``size``, or its data
            cannot be read (a damaged file); the message names the file and chromosome.
    """
    out = np.full(end - start, np.nan, dtype=np.float32)
    lo, hi = max(start, 0), min(end, size)
    if hi <= lo:
        return out
    length = bw.chroms(chrom)
    if length is None:
        return out
    path = getattr(bw, "path", "(bigWig)")
    if hi > length:
        raise InputError(f"track file {path}: chromosome {chrom} has {length} bp in the track but {size} bp in "
                         "the genome; the track was made for another assembly")
    try:
        vals = np.asarray(bw.values(chrom, lo, hi, numpy=True), dtype=np.float32)
    except RuntimeError as exc:
        raise InputError(f"track file {path} is corrupt: reading {chrom}:{lo}-{hi} failed ({exc}); "
                         "copy or download it again") from exc
    if vals.size == 0:  # a bigWig without any values (no data index)
        return out
    if vals.shape != (hi - lo,):
        raise InputError(f"track file {path} is corrupt: {chrom}:{lo}-{hi} gave {vals.size} values")
    vals[~np.isfinite(vals)] = np.nan
    out[lo - start : hi - start] = vals
    return out

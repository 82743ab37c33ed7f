"""bigWig tracks: reading measured values, checking them against the genome,
and writing per-base predictions as compact, browser-ready bigWigs.

Missing values (no entry in the bigWig, NaN or infinite) are returned as NaN
and always mean "unknown", never 0.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import numpy as np
import pyBigWig

from seq_unet.errors import InputError
from seq_unet.io.atomic import atomic_path, ensure_free_space

log = logging.getLogger(__name__)

# Default rounding step of written values, in the track's units: 0.005 is under
# 0.4% of the 0.87-2.16 range of relative-copy-number replication timing, and
# turns a smooth prediction into runs of tens of bases.
DEFAULT_PRECISION = 0.005


# bbi file layout (UCSC bigWig format, little-endian): a 64-byte header, one 24-byte
# header per zoom level, then sections found through the header's offsets: the
# chromosome B+ tree, the data, the R-tree index over the data, the zoom levels.
_BIGWIG_MAGIC = 0x888FFC26
_BIGBED_MAGIC = 0x8789F2EB
_CHROM_TREE_MAGIC = 0x78CA8C91
_INDEX_MAGIC = 0x2468ACE0
_HEADER = struct.Struct("<IHHQQQHHQQIQ")
_ZOOM = struct.Struct("<IIQQ")
_TREE_HEADER = struct.Struct("<IIIIQQ")
_NODE = struct.Struct("<BBH")


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


def _what_it_is(head: bytes) -> str:
    """A hint for a file that is not a bigWig, from its first bytes."""
    if len(head) >= 4 and struct.unpack("<I", head[:4])[0] == _BIGBED_MAGIC:
        return " (it is a bigBed file; tracks must be bigWig)"
    if head.startswith(b"\x1f\x8b"):
        return " (it is gzip-compressed; tracks must be bigWig)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("#", "browser"))]
    if lines and lines[0].startswith(">"):
        return " (it looks like FASTA)"
    first = lines[0].split() if lines else []
    if first and first[0] in ("track", "fixedStep", "variableStep"):
        return " (it looks like wiggle or bedGraph text; convert it with wigToBigWig or bedGraphToBigWig)"
    if len(first) >= 3 and first[1].isdigit() and first[2].isdigit():
        return " (it looks like bedGraph or BED text; convert it with bedGraphToBigWig)"
    return " (it is a text file)"


def _check_layout(path: str) -> None:
    """Refuse a file that is not a bigWig, or a truncated or damaged one, before pyBigWig reads it.

    libBigWig trusts the file's offsets and counts: a file cut within its zoom
    headers, or with a damaged chromosome list, crashes the process instead of
    raising. This reads the header, the zoom headers, the whole chromosome tree and
    the R-tree indexes of the data and the zoom levels (about a hundredth of the file),
    and checks every offset and count against the file; a damaged index entry would
    otherwise make pyBigWig return no values (NaN) for its region without a word.
    """
    def corrupt(what: str) -> InputError:
        return InputError(f"track file {path} is truncated or corrupt: {what}; copy or download it again")

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(4096)
            if size == 0:
                raise InputError(f"track file {path} is empty (0 bytes), not a bigWig file")
            if len(head) < 4 or struct.unpack("<I", head[:4])[0] != _BIGWIG_MAGIC:
                raise InputError(f"track file {path} is not a bigWig file{_what_it_is(head)}")
            if size < _HEADER.size:
                raise corrupt(f"it has only {size} bytes, fewer than a bigWig header")
            (_, _, n_zoom, tree_at, data_at, index_at, _, _, _, summary_at, _, ext_at) = _HEADER.unpack_from(head)
            if _HEADER.size + n_zoom * _ZOOM.size > size:
                raise corrupt(f"it has only {size:,} bytes, fewer than its {n_zoom} zoom-level headers need")
            fh.seek(_HEADER.size)
            zooms = [_ZOOM.unpack(fh.read(_ZOOM.size)) for _ in range(n_zoom)]
            # a file without values (only chromosomes in its header) has no data index
            needs = [(tree_at, _TREE_HEADER.size, "the chromosome list")]
            needs += [(data_at, 4, "the data"), (index_at, 48, "the data index")] if index_at else []
            needs += [(summary_at, 40, "the summary")] if summary_at else []
            needs += [(ext_at, 4, "the extension header")] if ext_at else []
            for level, (_, _, zdata, zindex) in enumerate(zooms, 1):
                needs += [(zdata, 4, f"zoom level {level}"), (zindex, 48, f"the index of zoom level {level}")]
            for offset, length, what in needs:
                if offset < _HEADER.size or offset + length > size:
                    raise corrupt(f"its header places {what} at byte {offset:,}, but the file has {size:,} bytes")
            n_chroms = _check_chrom_tree(fh, tree_at, size, corrupt)
            if index_at:
                _check_index(fh, index_at, data_at, size, n_chroms, corrupt, "data index")
            for level, (_, _, zdata, zindex) in enumerate(zooms, 1):
                _check_index(fh, zindex, zdata, size, n_chroms, corrupt, f"index of zoom level {level}")
    except IsADirectoryError:
        raise InputError(f"track file {path} is a directory, not a bigWig file") from None
    except OSError as exc:
        raise InputError(f"cannot read track file {path}: {exc.strerror or exc}") from exc


def _check_chrom_tree(fh, at: int, size: int, corrupt) -> int:
    """Walk the chromosome B+ tree: every node inside the file, every chromosome id once.

    Returns the number of chromosomes.
    """
    fh.seek(at)
    magic, block, key_size, val_size, n_items, _ = _TREE_HEADER.unpack(fh.read(_TREE_HEADER.size))
    if magic != _CHROM_TREE_MAGIC:
        raise corrupt(f"no chromosome list at byte {at:,}")
    item = key_size + 8
    if val_size != 8 or not 0 < key_size <= 1024 or block == 0 or n_items * item > size:
        raise corrupt("its chromosome list has an impossible layout")
    seen = np.zeros(n_items, dtype=bool)
    todo, visited = [at + _TREE_HEADER.size], set()
    while todo:
        node = todo.pop()
        if node in visited or len(visited) > n_items + 1 or node + _NODE.size > size:
            raise corrupt("its chromosome list points outside the file or loops")
        visited.add(node)
        fh.seek(node)
        leaf, _, count = _NODE.unpack(fh.read(_NODE.size))
        body = fh.read(count * item)
        if count > block or len(body) < count * item:
            raise corrupt("its chromosome list holds a node larger than the file allows")
        if leaf:
            ids = np.frombuffer(body, dtype=[("key", f"S{key_size}"), ("id", "<u4"), ("len", "<u4")])["id"]
            if (ids >= n_items).any() or seen[ids].any() or len(np.unique(ids)) != len(ids):
                raise corrupt("its chromosome list has invalid or repeated chromosome ids")
            seen[ids] = True
        else:
            todo.extend(np.frombuffer(body, dtype=[("key", f"S{key_size}"), ("child", "<u8")])["child"].tolist())
    if not seen.all():
        raise corrupt(f"its chromosome list names {int(seen.sum())} of the {n_items} chromosomes it announces")
    return n_items


_INDEX_HEADER = struct.Struct("<IIQIIIIQII")
_INDEX_LEAF = np.dtype([("c0", "<u4"), ("b0", "<u4"), ("c1", "<u4"), ("b1", "<u4"), ("at", "<u8"), ("n", "<u8")])
_INDEX_BRANCH = np.dtype([("c0", "<u4"), ("b0", "<u4"), ("c1", "<u4"), ("b1", "<u4"), ("at", "<u8")])


def _check_index(fh, at: int, data_at: int, size: int, n_chroms: int, corrupt, what: str) -> None:
    """Walk an R-tree index (of the data or of a zoom level): nodes inside the file, blocks
    between ``data_at`` and the index, valid chromosome ids."""
    fh.seek(at)
    magic, block, *_ = _INDEX_HEADER.unpack(fh.read(_INDEX_HEADER.size))
    if magic != _INDEX_MAGIC:
        raise corrupt(f"no {what} at byte {at:,}")
    todo, visited = [at + _INDEX_HEADER.size], set()
    while todo:
        node = todo.pop()
        if node in visited or not at < node <= size - _NODE.size or len(visited) > (size - at) // _NODE.size:
            raise corrupt(f"its {what} points outside the file or loops")
        visited.add(node)
        fh.seek(node)
        leaf, _, count = _NODE.unpack(fh.read(_NODE.size))
        kind = _INDEX_LEAF if leaf else _INDEX_BRANCH
        body = fh.read(count * kind.itemsize)
        if count > block or len(body) < count * kind.itemsize:
            raise corrupt(f"its {what} holds a node larger than the file allows")
        items = np.frombuffer(body, dtype=kind)
        if ((items["c0"] >= n_chroms) | (items["c1"] >= n_chroms) | (items["c0"] > items["c1"])
                | ((items["c0"] == items["c1"]) & (items["b0"] > items["b1"]))).any():
            raise corrupt(f"its {what} has impossible chromosome positions")
        if leaf:
            if ((items["at"] < data_at) | (items["at"] + items["n"] > at)).any():
                raise corrupt(f"its {what} points outside the data")
        else:
            todo.extend(items["at"].tolist())


def open_bigwig(path: str | os.PathLike) -> BigWigFile:
    """Open a bigWig for reading, with a clear error if it is missing, not a bigWig, or damaged."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"track file {path} does not exist")
    _check_layout(path)
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
        self._written = 0  # bytes of data entries added so far, before compression

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
        expected = self._order[self._next] if self._next < len(self._order) else None
        if chrom != expected:
            raise ValueError(f"chromosome {chrom!r} added out of order; expected {expected!r}")
        if len(values) != self.sizes[chrom]:
            raise ValueError(f"{chrom}: got {len(values)} values for a chromosome of {self.sizes[chrom]} bp")
        self._next += 1
        starts, ends, vals = run_length_encode(values, self.precision)
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
        if exc_type is None and self._next != len(self._order):
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

"""Genome access: preparing an indexed FASTA, chromosome sizes, base codes and one-hot DNA.

Bases are stored as compact codes (A=0, C=1, G=2, T=3, anything else=4) and
one-hot encoded on the fly; code 4 (N and IUPAC ambiguity codes) becomes an
all-zero column. Lower-case (soft-masked) bases are ordinary bases.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pyfaidx

from seq_unet.errors import InputError
from seq_unet.io.atomic import atomic_path

UNKNOWN = 4
_LUT = np.full(256, UNKNOWN, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _LUT[ord(_b)] = _i
    _LUT[ord(_b.lower())] = _i
# complement of codes 0..4 (A<->T, C<->G, N->N)
_COMPLEMENT = np.array([3, 2, 1, 0, UNKNOWN], dtype=np.uint8)


def encode(seq: str | bytes) -> np.ndarray:
    """Encode a DNA string as uint8 codes, shape ``(length,)``."""
    raw = seq.encode("ascii", errors="replace") if isinstance(seq, str) else seq
    return _LUT[np.frombuffer(raw, dtype=np.uint8)]


def one_hot(codes: np.ndarray) -> np.ndarray:
    """One-hot encode codes ``(..., length)`` to float32 ``(..., 4, length)``; unknown -> zeros."""
    eye = np.concatenate([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
    return np.moveaxis(eye[codes], -1, -2)


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Reverse complement codes along the last axis."""
    return _COMPLEMENT[codes[..., ::-1]]


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def prepare_fasta(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, int]:
    """Write ``src`` (plain or gzip FASTA) as an uncompressed, faidx-indexed ``dst``.

    Line endings are normalised to ``\\n`` and each record's header is cut to
    its name (first word), so the name pyfaidx reports is the name the user
    sees. Returns the chromosome sizes in FASTA order.

    Raises:
        InputError: the file is missing, not FASTA, has an empty or duplicate record.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputError(f"FASTA file {src} does not exist")
    opener = gzip.open if _is_gzip(src) else open
    sizes: dict[str, int] = {}
    name: str | None = None
    line_no = 0
    with atomic_path(dst) as tmp:
        try:
            with opener(src, "rb") as fin, open(tmp, "wb") as fout:
                for line_no, raw in enumerate(fin, start=1):
                    line = raw.rstrip(b"\r\n")
                    if line.startswith(b">"):
                        if name is not None and sizes[name] == 0:
                            raise InputError(f"{src}: sequence {name!r} is empty (line {line_no - 1})")
                        fields = line[1:].split()
                        if not fields:
                            raise InputError(f"{src}: header without a name at line {line_no}")
                        name = fields[0].decode("ascii", errors="replace")
                        if name in sizes:
                            raise InputError(f"{src}: duplicate sequence name {name!r} at line {line_no}")
                        sizes[name] = 0
                        fout.write(b">" + fields[0] + b"\n")
                    elif line.strip():
                        if name is None:
                            raise InputError(
                                f"{src} is not a FASTA file: line {line_no} comes before any '>' header"
                            )
                        sizes[name] += len(line.strip())
                        fout.write(line.strip() + b"\n")
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"cannot read FASTA {src}: {exc}") from exc
        if not sizes:
            raise InputError(f"{src} holds no FASTA records")
        if sizes[name] == 0:  # type: ignore[index]
            raise InputError(f"{src}: sequence {name!r} is empty (line {line_no})")
    fai = Path(str(dst) + ".fai")
    fai.unlink(missing_ok=True)
    try:
        pyfaidx.Faidx(str(dst)).close()
    except pyfaidx.FastaIndexingError as exc:
        dst.unlink(missing_ok=True)
        raise InputError(f"{src}: cannot index FASTA: {exc}") from exc
    return sizes


def read_chrom_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Read a two-column ``chrom<TAB>length`` file (or a ``.fai``), keeping file order."""
    if not Path(path).exists():
        raise InputError(f"chromosome sizes {path} do not exist; run `seq-unet genome` first")
    sizes: dict[str, int] = {}
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                fields = line.rstrip("\r\n").split("\t")
                try:
                    sizes[fields[0]] = int(fields[1])
                except (IndexError, ValueError):
                    raise InputError(f"{path} line {n}: expected 'chrom<TAB>length', got {line.strip()[:80]!r}") from None
    return sizes


def write_chrom_sizes(sizes: dict[str, int], path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{c}\t{n}\n" for c, n in sizes.items()))


def file_md5(path: str | os.PathLike) -> str:
    """MD5 of a file's bytes (for a prepared FASTA: names and upper/lower case included)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Genome:
    """Read access to an indexed FASTA.

    The pyfaidx handle is opened lazily and re-opened in each process (a handle
    shared across DataLoader workers returns wrong sequence).
    """

    def __init__(self, fasta: str | os.PathLike):
        self.path = str(fasta)
        if not os.path.exists(self.path + ".fai"):
            raise InputError(f"{self.path} has no .fai index; run `seq-unet genome` first")
        self.sizes = read_chrom_sizes(self.path + ".fai")
        self._handle: pyfaidx.Fasta | None = None
        self._pid: int | None = None

    def _fasta(self) -> pyfaidx.Fasta:
        if self._handle is None or self._pid != os.getpid():
            self._handle = pyfaidx.Fasta(self.path, as_raw=True, sequence_always_upper=False, rebuild=False)
            self._pid = os.getpid()
        return self._handle

    def codes(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Base codes of ``chrom:[start, end)``; positions outside the chromosome are unknown (4)."""
        if chrom not in self.sizes:
            raise InputError(f"chromosome {chrom!r} is not in {self.path}")
        size = self.sizes[chrom]
        out = np.full(end - start, UNKNOWN, dtype=np.uint8)
        lo, hi = max(start, 0), min(end, size)
        if hi > lo:
            out[lo - start : hi - start] = encode(self._fasta()[chrom][lo:hi])
        return out

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_pid"] = None
        return state


# .2bit (UCSC): 2 bits a base in the order T, C, A, G; N runs and lower-case
# (soft-masked) runs are stored as block lists. Layout (little-endian, version 0):
# header (signature, version, count, reserved), index (name length, name, offset
# of the record), then per sequence: size, N blocks, mask blocks, reserved, bases.
_TWOBIT_SIGNATURE = 0x1A412743
_TWOBIT_BITS = np.zeros(256, dtype=np.uint8)  # anything not ACGT is stored as T under an N block
for _i, _b in enumerate("TCAG"):
    _TWOBIT_BITS[ord(_b)] = _i
    _TWOBIT_BITS[ord(_b.lower())] = _i


def _blocks(flag: np.ndarray) -> np.ndarray:
    """``(2, n_blocks)`` uint32 starts and sizes of the True runs of ``flag``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], flag, [False]]).astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    return np.stack([starts, ends - starts]).astype("<u4")


def write_twobit(fasta: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write an indexed FASTA as a UCSC ``.2bit`` file (what assembly hubs load as the genome).

    Bases other than A, C, G, T (N, IUPAC codes) become N blocks; lower-case
    bases become soft-mask blocks, as UCSC's faToTwoBit does.
    """
    import struct

    genome = Genome(fasta)
    fa = genome._fasta()

    def raw(chrom: str) -> np.ndarray:
        return np.frombuffer(fa[chrom][:].encode("ascii", errors="replace"), dtype=np.uint8)

    def acgt(b: np.ndarray) -> np.ndarray:
        return _LUT[b] != UNKNOWN

    # first pass: block lists, which fix every record's size and so the index offsets
    blocks = {}
    for chrom in genome.sizes:
        b = raw(chrom)
        blocks[chrom] = (_blocks(~acgt(b)), _blocks((b >= ord("a")) & (b <= ord("z"))))
    names = [c.encode() for c in genome.sizes]
    if any(len(n) > 255 for n in names):
        raise InputError(f"{fasta}: a chromosome name longer than 255 characters cannot go into a .2bit file")
    offset = 16 + sum(1 + len(n) + 4 for n in names)
    index = []
    for chrom, name in zip(genome.sizes, names):
        index.append(struct.pack("<B", len(name)) + name + struct.pack("<I", offset))
        n_blocks, m_blocks = blocks[chrom]
        offset += 4 * 4 + 8 * (n_blocks.shape[1] + m_blocks.shape[1]) + (genome.sizes[chrom] + 3) // 4
    if offset >= 2**32:
        raise InputError(f"{fasta}: genome too large for a version-0 .2bit file (4 GB)")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(struct.pack("<IIII", _TWOBIT_SIGNATURE, 0, len(names), 0))
        fh.writelines(index)
        for chrom in genome.sizes:  # second pass: the bases
            n_blocks, m_blocks = blocks[chrom]
            bits = _TWOBIT_BITS[raw(chrom)]
            bits = np.concatenate([bits, np.zeros(-len(bits) % 4, np.uint8)]).reshape(-1, 4)
            packed = (bits[:, 0] << 6) | (bits[:, 1] << 4) | (bits[:, 2] << 2) | bits[:, 3]
            fh.write(struct.pack("<II", genome.sizes[chrom], n_blocks.shape[1]))
            fh.write(n_blocks.tobytes())
            fh.write(struct.pack("<I", m_blocks.shape[1]))
            fh.write(m_blocks.tobytes())
            fh.write(struct.pack("<I", 0))
            fh.write(packed.astype(np.uint8).tobytes())
    return Path(path)

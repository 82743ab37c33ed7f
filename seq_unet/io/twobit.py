"""Writing a prepared FASTA as a UCSC ``.2bit`` file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seq_unet.errors import InputError
from seq_unet.io.atomic import atomic_path
from seq_unet.io.bases import _LUT, UNKNOWN
from seq_unet.io.genome import Genome

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

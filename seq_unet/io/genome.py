"""Genome access: read access to a prepared, indexed FASTA, chromosome sizes and the FASTA's checksum.

Sequence comes back as base codes (see ``seq_unet.io.bases``); positions outside a
chromosome are unknown.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pyfaidx

from seq_unet.errors import InputError
from seq_unet.io.atomic import atomic_path
from seq_unet.io.bases import UNKNOWN, encode


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
                    raise InputError(
                        f"{path} line {n}: expected 'chrom<TAB>length', got {line.strip()[:80]!r}"
                    ) from None
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
            try:
                seq = self._fasta()[chrom][lo:hi]
            except (pyfaidx.FetchError, OSError, ValueError) as exc:
                raise InputError(f"cannot read {chrom}:{lo}-{hi} from {self.path} ({exc}); "
                                 "run `seq-unet genome` again") from exc
            if len(seq) != hi - lo:
                raise InputError(f"{self.path} gave {len(seq)} bases for {chrom}:{lo}-{hi}: the file changed "
                                 "after it was indexed; run `seq-unet genome` again")
            out[lo - start : hi - start] = encode(seq)
        return out

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_pid"] = None
        return state


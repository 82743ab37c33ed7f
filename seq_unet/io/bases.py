"""Base codes: DNA as compact integer codes, their one-hot encoding and reverse complement.

Bases are stored as compact codes (A=0, C=1, G=2, T=3, anything else=4) and
one-hot encoded on the fly; code 4 (N and IUPAC ambiguity codes) becomes an
all-zero column. Lower-case (soft-masked) bases are ordinary bases.
"""

from __future__ import annotations

import numpy as np

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
    codes = np.asarray(codes)
    # one comparison per channel writes a contiguous (..., 4, length) array, about twice as fast
    # as indexing an identity matrix and moving the axis (this runs for every training window)
    return (codes[..., None, :] == np.arange(4, dtype=codes.dtype)[:, None]).astype(np.float32)


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Reverse complement codes along the last axis."""
    return _COMPLEMENT[codes[..., ::-1]]



def padded_codes(codes: np.ndarray, start: int, length: int) -> np.ndarray:
    """A copy of ``codes[start:start + length]``, unknown where the range passes either end of ``codes``."""
    out = np.full(length, UNKNOWN, np.uint8)
    a, b = max(start, 0), min(start + length, len(codes))
    if b > a:
        out[a - start : b - start] = codes[a:b]
    return out

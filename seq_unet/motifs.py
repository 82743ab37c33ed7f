"""IUPAC consensus motifs: exact matching and position weights for convolution filters.

One table of the IUPAC nucleotide codes serves both the origin proxy of
:mod:`seq_unet.evaluate.origins` (exact matches on either strand) and the motif
detectors of :class:`~seq_unet.model.unet.MotifScanner`, which can start from a
consensus (``model.motif_init``) instead of random weights.
"""

from __future__ import annotations

import math

import numpy as np

# The bases each IUPAC code stands for (Cornish-Bowden 1985, Nucleic Acids Res 13:3021).
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "W": "AT", "S": "CG", "R": "AG", "Y": "CT", "K": "GT",
         "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}
_PAIR = dict(zip("ACGT", "TGCA"))
# each code's complement is the code of the complementary bases (W <-> W, R <-> Y, B <-> V, ...)
_COMPLEMENT = str.maketrans({code: next(c for c, b in IUPAC.items() if set(b) == {_PAIR[x] for x in bases})
                             for code, bases in IUPAC.items()})
ORDER = "ACGT"  # one-hot channel order of the inputs


def check_motif(motif: str, what: str = "motif") -> str:
    """``motif`` in upper case; a ``ValueError`` naming the letter if it is not an IUPAC code."""
    m = str(motif).upper()
    bad = sorted(set(m) - set(IUPAC))
    if not m or bad:
        raise ValueError(f"{what} {motif!r} is not an IUPAC nucleotide consensus"
                         + (f" (letters {bad} are not codes of {''.join(IUPAC)})" if bad else " (empty)"))
    return m


def reverse_complement(motif: str) -> str:
    """The consensus of the other strand (``WTTTAYRTTTW`` -> ``WAAAYRTAAAW``)."""
    return check_motif(motif).translate(_COMPLEMENT)[::-1]


def regex(motif: str) -> str:
    """A regular expression matching ``motif`` exactly on the given strand."""
    return "".join(f"[{IUPAC[c]}]" if len(IUPAC[c]) > 1 else c for c in check_motif(motif))


def log_odds(motif: str, width: int, mismatch: float = 0.04) -> np.ndarray:
    """Position weights ``(4, width)`` of ``motif``, centred: log2(p / 0.25) per base and position.

    At a position with ``k`` allowed bases, each has probability ``(1 - mismatch) / k`` and each
    other base ``mismatch / (4 - k)``; positions outside the motif weigh 0. A convolution with
    these weights scores an exact match highest, its score falling by about 4 to 6 per mismatch.
    """
    m = check_motif(motif)
    if len(m) > width:
        raise ValueError(f"motif {motif!r} ({len(m)} bp) is longer than the filter width {width}")
    weights = np.zeros((4, width), np.float32)
    start = (width - len(m)) // 2
    for i, code in enumerate(m):
        allowed = IUPAC[code]
        for b, base in enumerate(ORDER):
            if base in allowed:
                p = (1 - mismatch) / len(allowed) if len(allowed) < 4 else 0.25
            else:
                p = mismatch / (4 - len(allowed))
            weights[b, start + i] = math.log2(p / 0.25)
    return weights


def both_strands(motifs) -> list[str]:
    """Each motif followed by its reverse complement unless that is the same (palindromes once)."""
    out: list[str] = []
    for motif in motifs:
        m = check_motif(motif)
        for s in (m, reverse_complement(m)):
            if s not in out:
                out.append(s)
    return out

"""Do a track's peaks sit on replication origins? A proxy computed from the sequence alone.

Budding-yeast origins (ARS elements) carry the ARS consensus sequence (ACS),
``WTTTAYRTTTW`` (Broach et al. 1983, Cold Spring Harb Symp Quant Biol 47:1165;
Newlon & Theis 1993, Curr Opin Genet Dev 3:752), on either strand. Most exact
matches in the genome are not origins, so a match near a peak is evidence, not
proof, that the peak is an origin. :func:`peak_enrichment` calls a track's top
peaks (the highest local maxima at least ``separation`` bases apart), counts
the fraction with a motif match within ``radius`` bases, and compares that
with the same fraction at random positions of the same chromosomes.
"""

from __future__ import annotations

import re

import numpy as np

from seq_unet.io.bigwig_read import open_bigwig, read_values
from seq_unet.io.genome import Genome
from seq_unet.motifs import both_strands, regex

ACS = "WTTTAYRTTTW"
_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


def motif_positions(sequence: str, motif: str = ACS) -> np.ndarray:
    """Centres of the exact matches of an IUPAC ``motif`` on either strand of ``sequence`` (sorted, unique)."""
    seq = sequence.upper()
    hits = set()
    for m in both_strands([motif]):
        pattern = re.compile("(?=" + regex(m) + ")")
        hits.update(h.start() + len(m) // 2 for h in pattern.finditer(seq))
    return np.array(sorted(hits), dtype=np.int64)


def top_peaks(values: np.ndarray, k: int, separation: int) -> np.ndarray:
    """Positions of the ``k`` highest values at least ``separation`` bases from every higher one (NaN ignored)."""
    order = np.argsort(np.nan_to_num(values, nan=-np.inf))[::-1]
    taken = np.zeros(len(values), bool)
    peaks = []
    for i in order:
        if len(peaks) == k or not np.isfinite(values[i]):
            break
        if taken[i]:
            continue
        peaks.append(i)
        taken[max(0, i - separation) : i + separation + 1] = True
    return np.array(peaks, dtype=np.int64)


def _near(positions: np.ndarray, sites: np.ndarray, radius: int) -> np.ndarray:
    """For each position, whether some site lies within ``radius`` bases."""
    if not len(sites):
        return np.zeros(len(positions), bool)
    i = np.searchsorted(sites, positions)
    left = np.abs(positions - sites[np.clip(i - 1, 0, len(sites) - 1)])
    right = np.abs(sites[np.clip(i, 0, len(sites) - 1)] - positions)
    return np.minimum(left, right) <= radius


def motif_sites(fasta: str, chroms: list[str], motif: str = ACS) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per chromosome, the centres of ``motif``'s exact matches (:func:`motif_positions`), and the sizes."""
    genome = Genome(fasta)
    sizes = {c: genome.sizes[c] for c in chroms}
    return {c: motif_positions(_LETTERS[genome.codes(c, 0, n)].tobytes().decode(), motif)
            for c, n in sizes.items()}, sizes


def peak_enrichment(track: str, fasta: str, chroms: list[str], n_peaks: int = 300, radius: int = 200,
                    separation: int = 2000, motif: str = ACS, n_random: int = 20000, seed: int = 0,
                    sites: tuple[dict[str, np.ndarray], dict[str, int]] | None = None) -> dict:
    """The fraction of ``track``'s top ``n_peaks`` peaks on ``chroms`` with a ``motif`` match within ``radius``
    bases, against random positions of the same chromosomes (uniform over their bases). ``sites``: the
    result of :func:`motif_sites` for these chromosomes, to scan the genome once for several tracks."""
    sites, sizes = sites if sites is not None else motif_sites(fasta, chroms, motif)
    bw = open_bigwig(track)
    rng = np.random.default_rng(seed)
    candidates = []
    try:
        for c in chroms:
            size = sizes[c]
            values = read_values(bw, c, 0, size, size)
            peaks = top_peaks(values, n_peaks, separation)
            candidates += [(float(values[p]), c, int(p)) for p in peaks]
    finally:
        bw.close()
    candidates.sort(reverse=True)
    chosen = candidates[:n_peaks]
    hit = sum(bool(_near(np.array([p]), sites[c], radius)[0]) for _, c, p in chosen)
    lengths = np.array([sizes[c] for c in chroms], dtype=float)
    picks = rng.choice(len(chroms), size=n_random, p=lengths / lengths.sum())
    random_hits = 0
    for j, c in enumerate(chroms):
        pos = rng.integers(0, sizes[c], size=int((picks == j).sum()))
        random_hits += int(_near(pos, sites[c], radius).sum())
    peak_fraction = hit / max(len(chosen), 1)
    random_fraction = random_hits / n_random
    return {"peaks": len(chosen), "peaks_with_motif": hit, "peak_fraction": peak_fraction,
            "random_fraction": random_fraction,
            "enrichment": peak_fraction / random_fraction if random_fraction else float("nan"),
            "motif_matches": int(sum(len(s) for s in sites.values())), "radius": radius}

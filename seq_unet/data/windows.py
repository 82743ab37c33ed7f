"""Windows: tile the genome, assign each window its split, and describe its masks.

Whole chromosomes go to one split (validation and test chromosomes are named
in the data config; every other chromosome trains). A base is masked for a
track where the track has no value (missing, NaN or infinite), where the DNA is
unknown (N or an IUPAC code), inside a blacklist region, or past the
chromosome end. Masked positions are "unknown": they never count in the loss
or the metrics, and are never filled with 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seq_unet.errors import InputError
from seq_unet.io.bases import UNKNOWN
from seq_unet.io.bigwig_read import check_tracks_match_genome, open_bigwigs, read_values
from seq_unet.io.binning import bin_means
from seq_unet.io.genome import Genome
from seq_unet.io.intervals import covered_mask, overlapping_bases, read_bed, tile_genome

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class WindowSpec:
    """How windows are cut and targets binned.

    Attributes:
        length: window length in bases.
        stride: distance between consecutive window starts.
        resolution: target bin size in bases (1 = per-base targets); windows
            start on multiples of it, so bins follow the genome's grid.
        min_valid_fraction: a bin is a valid target if at least this fraction
            of its bases are valid.
        max_shift: bases of extra sequence stored on each side of a window, so
            training can shift windows at random by up to this much (a
            multiple of ``resolution``; 0 disables shifting).
    """

    length: int
    stride: int
    resolution: int
    min_valid_fraction: float
    max_shift: int

    def __post_init__(self) -> None:
        if self.length <= 0 or self.stride <= 0 or self.resolution <= 0:
            raise InputError(f"window length, stride and target resolution must be positive: {self}")
        if self.length % self.resolution or self.stride % self.resolution:
            raise InputError(
                f"window length ({self.length}) and stride ({self.stride}) must be multiples of the "
                f"target resolution ({self.resolution}) so that target bins stay on the genome grid"
            )
        if self.stride > self.length:
            raise InputError(f"stride ({self.stride}) is longer than the window ({self.length}): the bases between "
                             "windows would never be seen; use a stride of at most the window length")
        if self.max_shift < 0 or self.max_shift % self.resolution:
            raise InputError(f"max_shift ({self.max_shift}) must be a non-negative multiple of the target "
                             f"resolution ({self.resolution})")
        if not 0 < self.min_valid_fraction <= 1:
            raise InputError(f"min_valid_fraction must be in (0, 1], got {self.min_valid_fraction}")

    @property
    def n_bins(self) -> int:
        return self.length // self.resolution

    @property
    def stored_length(self) -> int:
        """Bases stored per window: the window plus ``max_shift`` on each side."""
        return self.length + 2 * self.max_shift


def assign_splits(chroms: list[str], val: list[str], test: list[str]) -> dict[str, str]:
    """Map each chromosome to ``train``, ``val`` or ``test``; check the lists."""
    for name, lst in (("validation", val), ("test", test)):
        unknown = [c for c in lst if c not in chroms]
        if unknown:
            raise InputError(f"{name} chromosomes {unknown} are not in the FASTA; FASTA chromosomes: {chroms}")
    both = sorted(set(val) & set(test))
    if both:
        raise InputError(
            f"chromosomes {both} are listed for both validation and test; a chromosome belongs to one split"
        )
    split = {c: "train" for c in chroms}
    split.update({c: "val" for c in val})
    split.update({c: "test" for c in test})
    if "train" not in split.values():
        raise InputError("no chromosome is left for training after the validation and test chromosomes")
    return split


def base_masks(genome: Genome, bws: dict, chrom: str, start: int, end: int,
               blacklist) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DNA codes, per-track values and per-track validity for ``chrom:[start, end)``.

    Returns:
        codes: uint8 ``(length,)``.
        values: float32 ``(n_tracks, length)``, NaN where unknown.
        valid: bool ``(n_tracks, length)``.
    """
    size = genome.sizes[chrom]
    codes = genome.codes(chrom, start, end)
    values = np.stack([read_values(bw, chrom, start, end, size) for bw in bws.values()])
    valid = np.isfinite(values) & (codes != UNKNOWN)[None, :]
    if blacklist is not None:
        valid &= ~covered_mask(blacklist, chrom, start, end)[None, :]
    return codes, values, valid


def bin_targets(values: np.ndarray, valid: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """Average per-base values into ``spec.resolution`` bins over valid bases only.

    Args:
        values: float32 ``(n_tracks, length)``.
        valid: bool ``(n_tracks, length)``.

    Returns:
        target float32 ``(n_tracks, length // resolution)`` (0 where invalid) and
        mask bool of the same shape.
    """
    # the fraction times the resolution can land a hair above a whole number (0.55 * 100 = 55.000000000000007)
    means, mask = bin_means(values, spec.resolution, valid, min_valid_fraction=spec.min_valid_fraction,
                            tolerance=1e-9, empty=0.0, dtype=np.float64)
    return np.where(mask, means, 0.0).astype(np.float32), mask


def make_windows(fasta: str, tracks: dict[str, str], spec: WindowSpec, val_chroms: list[str],
                 test_chroms: list[str], blacklist_bed: str | None = None) -> pd.DataFrame:
    """Tile the genome and describe every window.

    Returns one row per window (genome order) with columns ``chrom, start, end,
    split, chrom_length, pad_bases, unknown_bases, blacklist_bases``,
    ``valid_bins_<track>`` per track, and ``usable`` (at least one valid bin in
    some track).
    """
    genome = Genome(fasta)
    sizes = genome.sizes
    longest = max(sizes.values())
    if spec.length > longest:
        raise InputError(f"window length {spec.length} bp is longer than every chromosome "
                         f"(the longest, {max(sizes, key=sizes.get)}, has {longest} bp); choose a shorter window")
    split_of = assign_splits(list(sizes), list(val_chroms), list(test_chroms))
    check_tracks_match_genome(sizes, tracks)
    blacklist = read_bed(blacklist_bed, sizes) if blacklist_bed else None

    win = tile_genome(sizes, spec.length, spec.stride, spec.resolution)
    df = pd.DataFrame({"chrom": win.Chromosome.astype(str), "start": win.Start, "end": win.End,
                       "split": win.Chromosome.map(split_of), "chrom_length": win.ChromLength})
    df["pad_bases"] = np.maximum(df.end - df.chrom_length, 0)
    df["blacklist_bases"] = overlapping_bases(win, blacklist)
    bws = open_bigwigs(tracks)
    unknown, valid_bins = [], {name: [] for name in tracks}
    try:
        for row in df.itertuples(index=False):
            codes, values, valid = base_masks(genome, bws, row.chrom, row.start, row.end, blacklist)
            unknown.append(int((codes == UNKNOWN).sum()) - row.pad_bases)
            _, mask = bin_targets(values, valid, spec)
            for name, m in zip(tracks, mask):
                valid_bins[name].append(int(m.sum()))
    finally:
        for bw in bws.values():
            bw.close()
    df["unknown_bases"] = unknown
    for name in tracks:
        df[f"valid_bins_{name}"] = valid_bins[name]
    df["usable"] = df[[f"valid_bins_{n}" for n in tracks]].sum(axis=1) > 0
    for split in SPLITS:
        sub = df[df.split == split]
        log.info("%s: %d windows on %d chromosomes, %d usable", split, len(sub), sub.chrom.nunique(),
                 int(sub.usable.sum()))
    return df

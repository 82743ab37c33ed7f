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
CHUNK = 4_000_000  # bases read at a time (rounded down to whole target bins)


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


def chromosome_counts(genome: Genome, bws: dict, chrom: str, end: int, block: int, spec: WindowSpec, blacklist,
                      chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Running counts along ``chrom:[0, end)`` in blocks of ``block`` bases, in one pass over its bases.

    ``block`` is a multiple of ``spec.resolution`` that divides ``end`` and every window start and end;
    ``end`` may pass the chromosome's end, where bases are unknown and values missing. The bases are read
    ``chunk`` (default :data:`CHUNK`, rounded down to whole blocks) at a time.

    Returns:
        unknown: int64 ``(end // block + 1,)``; ``unknown[i]`` is the number of unknown bases in
            ``[0, i * block)``.
        valid: int64 ``(n_tracks, end // block + 1)``; ``valid[t, i]`` is the number of valid target
            bins of track ``t`` in ``[0, i * block)`` (as :func:`bin_targets` decides them).

    A window ``[s, e)`` then has ``unknown[e // block] - unknown[s // block]`` unknown bases, and so on:
    the genome is read once, not once per window that covers it. Target bins never straddle chunks, so
    the counts equal those of each window read alone.
    """
    if block % spec.resolution or end % block:
        raise ValueError(f"block {block} must be a multiple of the resolution {spec.resolution} and divide {end}")
    step = max((chunk or CHUNK) // block, 1) * block
    per_block = block // spec.resolution
    unknown = np.zeros(end // block + 1, dtype=np.int64)
    valid = np.zeros((len(bws), end // block + 1), dtype=np.int64)
    for a in range(0, end, step):
        b = min(a + step, end)
        codes, values, ok = base_masks(genome, bws, chrom, a, b, blacklist)
        unknown[a // block + 1 : b // block + 1] = (codes == UNKNOWN).reshape(-1, block).sum(axis=1)
        mask = bin_targets(values, ok, spec)[1]
        valid[:, a // block + 1 : b // block + 1] = mask.reshape(len(bws), -1, per_block).sum(axis=2)
    return np.cumsum(unknown), np.cumsum(valid, axis=1)


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
    unknown = np.zeros(len(df), dtype=np.int64)
    valid_bins = np.zeros((len(tracks), len(df)), dtype=np.int64)
    all_starts, all_ends = df.start.to_numpy(), df.end.to_numpy()
    try:
        for chrom, rows in df.groupby("chrom", sort=False).indices.items():
            starts, ends = all_starts[rows], all_ends[rows]
            # the coarsest grid every window start and end lies on (a multiple of the resolution)
            block = int(np.gcd.reduce(np.concatenate([starts, ends])))
            n_unknown, n_valid = chromosome_counts(genome, bws, chrom, int(ends.max()), block, spec, blacklist)
            lo, hi = starts // block, ends // block
            unknown[rows] = n_unknown[hi] - n_unknown[lo]
            valid_bins[:, rows] = n_valid[:, hi] - n_valid[:, lo]
    finally:
        for bw in bws.values():
            bw.close()
    df["unknown_bases"] = unknown - df.pad_bases.to_numpy()
    for name, v in zip(tracks, valid_bins):
        df[f"valid_bins_{name}"] = v
    df["usable"] = df[[f"valid_bins_{n}" for n in tracks]].sum(axis=1) > 0
    for split in SPLITS:
        sub = df[df.split == split]
        log.info("%s: %d windows on %d chromosomes, %d usable", split, len(sub), sub.chrom.nunique(),
                 int(sub.usable.sum()))
    return df

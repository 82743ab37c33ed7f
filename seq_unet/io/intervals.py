"""Genomic intervals: tiling chromosomes into windows, reading BED files and
measuring overlaps. This is the one module that uses pyranges.

Coordinates are 0-based, half-open, as in BED and bigWig.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyranges as pr

from seq_unet.errors import InputError


def tile_starts(chrom_length: int, window: int, stride: int, align: int = 1) -> np.ndarray:
    """Window starts that cover every base of a chromosome.

    Regular windows start at ``0, stride, 2*stride, ...``; if they stop short of
    the chromosome end, one more window is placed so that it ends at the
    chromosome end rounded up to a multiple of ``align`` (so target bins stay on
    the genome's ``align`` grid). A chromosome shorter than a window gets one
    window at 0; positions past its end are padding (unknown DNA, masked targets).
    """
    if window <= 0 or stride <= 0:
        raise ValueError("window and stride must be positive")
    end = -(-chrom_length // align) * align  # round up
    if end <= window:
        return np.array([0], dtype=np.int64)
    starts = list(range(0, end - window + 1, stride))
    if starts[-1] + window < end:
        starts.append(end - window)
    return np.asarray(starts, dtype=np.int64)


def tile_genome(chrom_sizes: dict[str, int], window: int, stride: int, align: int = 1) -> pd.DataFrame:
    """Tile every chromosome with :func:`tile_starts`; one row per window.

    Returns a DataFrame with columns Chromosome, Start, End (= Start + window,
    which may pass a short chromosome's end) and ChromLength, in genome order
    (chromosomes in the order of ``chrom_sizes``; pyranges would sort them).
    """
    frames = []
    for chrom, size in chrom_sizes.items():
        starts = tile_starts(size, window, stride, align)
        frames.append(pd.DataFrame({"Chromosome": chrom, "Start": starts, "End": starts + window,
                                    "ChromLength": size}))
    return pd.concat(frames, ignore_index=True)


def read_bed(path: str | os.PathLike, chrom_sizes: dict[str, int] | None = None) -> pr.PyRanges:
    """Read the first three columns of a BED file, checking chromosome names."""
    if not os.path.exists(path):
        raise InputError(f"BED file {path} does not exist")
    try:
        df = pd.read_csv(path, sep="\t", header=None, comment="#", usecols=[0, 1, 2],
                         names=["Chromosome", "Start", "End"], dtype={0: str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path} is not a BED file with chrom, start, end columns: {exc}") from exc
    if chrom_sizes is not None:
        unknown = sorted(set(df.Chromosome) - set(chrom_sizes))
        if unknown:
            raise InputError(f"BED file {path} names chromosomes not in the FASTA: {unknown}; "
                             f"FASTA chromosomes: {list(chrom_sizes)}")
    return pr.PyRanges(df, int64=True)


def covered_mask(regions: pr.PyRanges | None, chrom: str, start: int, end: int) -> np.ndarray:
    """Boolean ``(end - start,)``: True where any region of ``regions`` covers the base."""
    out = np.zeros(end - start, dtype=bool)
    if regions is None or len(regions) == 0:
        return out
    hits = regions[chrom, max(start, 0) : max(end, 1)]
    if len(hits) == 0:
        return out
    for s, e in zip(hits.df.Start.to_numpy(), hits.df.End.to_numpy()):
        out[max(s, start) - start : min(e, end) - start] = True
    return out


def overlapping_bases(df: pd.DataFrame, regions: pr.PyRanges | None) -> np.ndarray:
    """For each row of ``df`` (Chromosome, Start, End), the number of bases ``regions`` covers."""
    if regions is None or len(regions) == 0:
        return np.zeros(len(df), dtype=np.int64)
    merged = regions.merge()
    tagged = pr.PyRanges(df[["Chromosome", "Start", "End"]].assign(WindowId=np.arange(len(df))), int64=True)
    inter = tagged.intersect(merged)
    out = np.zeros(len(df), dtype=np.int64)
    if len(inter):
        idf = inter.df
        np.add.at(out, idf.WindowId.to_numpy(), (idf.End - idf.Start).to_numpy())
    return out

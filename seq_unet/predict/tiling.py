"""Prediction tiling: overlapping windows whose cropped centres stitch into one
seamless per-base track per chromosome.

Each window of length ``L`` keeps only its centre ``[crop, L - crop)``, where
the network sees context on both sides; the first window of a chromosome also
keeps its left edge and the last its right edge (there is no sequence beyond a
chromosome end). Windows step by ``L - 2 * crop``; the last window is placed to
end exactly at the chromosome end; a chromosome shorter than ``L`` gets one
window padded with unknown bases. Every base is written by exactly one window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Piece:
    """One window and the part of it that lands in the chromosome track.

    ``start`` is the window's first base in the chromosome (the window is
    ``[start, start + length)``; positions past the chromosome end are padding);
    ``keep_from``/``keep_to`` are chromosome coordinates of the kept part.
    """

    start: int
    keep_from: int
    keep_to: int


def plan_windows(chrom_length: int, length: int, crop: int) -> list[Piece]:
    """Windows covering ``[0, chrom_length)`` with cropped, non-overlapping kept parts."""
    if not 0 <= 2 * crop < length:
        raise ValueError(f"crop {crop} leaves nothing of a {length}-bp window")
    if chrom_length <= length:
        return [Piece(0, 0, chrom_length)]
    step = length - 2 * crop
    starts = list(range(0, chrom_length - length + 1, step))
    if starts[-1] + length < chrom_length:
        starts.append(chrom_length - length)
    pieces, cursor = [], 0
    for i, s in enumerate(starts):
        last = i == len(starts) - 1
        keep_to = chrom_length if last else s + length - crop
        pieces.append(Piece(s, cursor, keep_to))
        cursor = keep_to
    return pieces


def place(track: np.ndarray, piece: Piece, output: np.ndarray) -> None:
    """Copy the kept part of one window's ``output`` ``(..., length)`` into ``track`` ``(..., chrom_length)``."""
    track[..., piece.keep_from : piece.keep_to] = output[..., piece.keep_from - piece.start : piece.keep_to - piece.start]


def stitch(pieces: list[Piece], outputs: list[np.ndarray], chrom_length: int) -> np.ndarray:
    """Assemble window outputs ``(..., length)`` into one ``(..., chrom_length)`` array."""
    out = np.empty(outputs[0].shape[:-1] + (chrom_length,), dtype=outputs[0].dtype)
    for p, o in zip(pieces, outputs):
        place(out, p, o)
    return out

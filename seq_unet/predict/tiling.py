"""Prediction tiling: overlapping windows whose cropped centres stitch into one
seamless per-base track per chromosome.

Each window of length ``L`` keeps only its centre ``[crop, L - crop)``, where
the network sees context on both sides; the first window of a chromosome also
keeps its left edge and the last its right edge (there is no sequence beyond a
chromosome end). Windows step by ``L - 2 * crop``; the last window is placed to
end exactly at the chromosome end; a chromosome shorter than ``L`` gets one
window padded with unknown bases. Every base is kept by exactly one window.

With a ``blend`` width, two neighbouring windows cross-fade over ``blend``
bases centred on the boundary between their kept parts: each contributes with
a linear weight, and the two weights sum to 1 at every base. A prediction, and
above all its uncertainty (whose level each window estimates on its own), then
changes smoothly from one window to the next instead of stepping at the
boundary. The blended bases reach ``blend / 2`` past the kept part, so the crop
must be at least that much more than the context the model needs. At most two
windows meet at any base: the cross-fade narrows where a kept part is short.
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
    fade_from: int = 0  # half-width of the cross-fade around keep_from (0: none, e.g. at a chromosome start)
    fade_to: int = 0  # the same around keep_to

    @property
    def span(self) -> tuple[int, int]:
        """The bases this window contributes to, cross-fades included."""
        return self.keep_from - self.fade_from, self.keep_to + self.fade_to

    def weights(self) -> np.ndarray:
        """float32 weight of each base of :attr:`span`: 1 inside, linear ramps over the cross-fades."""
        lo, hi = self.span
        x = np.arange(lo, hi, dtype=np.float64) + 0.5
        w = np.ones(hi - lo)
        if self.fade_from:
            w = np.minimum(w, (x - lo) / (2 * self.fade_from))
        if self.fade_to:
            w = np.minimum(w, (hi - x) / (2 * self.fade_to))
        return w.astype(np.float32)


def plan_windows(chrom_length: int, length: int, crop: int, blend: int = 0) -> list[Piece]:
    """Windows covering ``[0, chrom_length)`` with cropped, non-overlapping kept parts (and cross-fades of
    up to ``blend`` bases around the boundaries between them, at most ``crop`` on either side)."""
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
    if blend > 1 and len(pieces) > 1:
        half = [min(blend // 2, crop, (a.keep_to - a.keep_from) // 2, (b.keep_to - b.keep_from) // 2)
                for a, b in zip(pieces, pieces[1:])]
        pieces = [Piece(p.start, p.keep_from, p.keep_to, half[i - 1] if i else 0, half[i] if i < len(half) else 0)
                  for i, p in enumerate(pieces)]
    return pieces


def contribution(piece: Piece, output: np.ndarray) -> np.ndarray:
    """What one window's ``output`` ``(..., length)`` adds over its :attr:`Piece.span`: the values, weighted."""
    lo, hi = piece.span
    part = output[..., lo - piece.start : hi - piece.start]
    if not (piece.fade_from or piece.fade_to):
        return part
    return part * piece.weights()


def place(track: np.ndarray, piece: Piece, output: np.ndarray, origin: int = 0) -> None:
    """Add one window's weighted ``output`` ``(..., length)`` to ``track`` ``(..., chrom_length)``, which starts
    as zeros (without cross-fades: copy the kept part); ``track`` may hold only the chromosome's bases from
    ``origin`` on."""
    lo, hi = piece.span
    lo, hi = lo - origin, hi - origin
    if not (piece.fade_from or piece.fade_to):
        track[..., lo:hi] = contribution(piece, output)
    else:
        track[..., lo:hi] += contribution(piece, output)


def stitch(pieces: list[Piece], outputs: list[np.ndarray], chrom_length: int) -> np.ndarray:
    """Assemble window outputs ``(..., length)`` into one ``(..., chrom_length)`` array."""
    out = np.zeros(outputs[0].shape[:-1] + (chrom_length,), dtype=outputs[0].dtype)
    for p, o in zip(pieces, outputs):
        place(out, p, o)
    return out

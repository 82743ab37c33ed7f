"""What the network reads: one-hot DNA, and optionally where on its chromosome each base lies.

Channels 0-3 are the one-hot bases (A, C, G, T; unknown DNA and padding past a
chromosome end are all zero). With a ``position_scale`` a fifth channel gives,
for every base, ``exp(-d / position_scale)`` where ``d`` is the distance in
bases to the nearest end of its chromosome (1 at a telomere, falling towards 0
in the middle of the chromosome; 0 past the ends). A training window of 384 kb
cannot see a telomere 200 kb away, yet distance to the chromosome end is one
of the things that makes a region replicate late.

The reverse complement of an input swaps the base channels (A<->T, C<->G) and
reverses the positions; the position channel is only reversed.
"""

from __future__ import annotations

import numpy as np
import torch

from seq_unet.io.bases import one_hot


def position_channel(starts: np.ndarray, length: int, chrom_sizes: np.ndarray | int, scale: float) -> np.ndarray:
    """``(batch, 1, length)`` float32: ``exp(-distance to the nearest chromosome end / scale)``.

    Args:
        starts: chromosome coordinate of each window's first base ``(batch,)`` (may be negative).
        length: window length.
        chrom_sizes: each window's chromosome length ``(batch,)``, or one for all.
        scale: decay length in bases.
    """
    starts = np.asarray(starts, dtype=np.int64).reshape(-1, 1)
    sizes = np.broadcast_to(np.asarray(chrom_sizes, dtype=np.int64).reshape(-1, 1), starts.shape)
    pos = starts + np.arange(length, dtype=np.int64)[None, :]
    dist = np.minimum(pos, sizes - 1 - pos)
    out = np.exp(-np.maximum(dist, 0) / float(scale)).astype(np.float32)
    out[dist < 0] = 0.0  # past the chromosome ends
    return out[:, None, :]


def encode_input(codes: np.ndarray, position_scale: float | None = None, starts: np.ndarray | None = None,
                 chrom_sizes: np.ndarray | int | None = None) -> np.ndarray:
    """Network input ``(batch, 4 or 5, length)`` float32 for base codes ``(batch, length)``."""
    x = one_hot(codes)
    if not position_scale:
        return x
    if starts is None or chrom_sizes is None:
        raise ValueError("a model with a position channel needs each window's start and chromosome length")
    return np.concatenate([x, position_channel(starts, codes.shape[-1], chrom_sizes, position_scale)], axis=1)


def input_channels(position_scale: float | None) -> int:
    return 5 if position_scale else 4


def reverse_complement_input(x: torch.Tensor) -> torch.Tensor:
    """The input of the other strand: bases complemented (A,C,G,T -> T,G,C,A) and every channel reversed."""
    if x.shape[1] == 4:
        return x.flip(1, 2)
    return torch.cat([x[:, :4].flip(1), x[:, 4:]], dim=1).flip(2)

"""Coordinate arithmetic of the U-Net, derived from its configuration.

Two alignment modes:

``same``
    Every convolution is zero-padded to keep its length, so an input of length
    ``L`` gives an output of length ``L`` registered base for base to the input.
    ``L`` must be a multiple of the product of the downsampling factors.
``valid``
    Convolutions are unpadded, as in the original U-Net: every output base is
    computed from real sequence only, never from padding. Each convolution
    trims ``dilation * (kernel - 1) / 2`` units from both ends, skip maps are
    centre-cropped to the decoder's length, and the output covers the centre
    ``[offset, L - offset)`` of the input. ``L`` must divide evenly at every
    downsampling step after the trims.

:class:`Geometry` computes, from the configuration alone, which lengths a
network accepts, its output length and offset, and its receptive field; the
network itself checks its input against it and crops by it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PADDINGS = ("same", "valid")


def level_factors(pool: int | Sequence[int], depth: int) -> list[int]:
    """Expand the per-level downsampling factor(s) to a list of ``depth`` ints."""
    if isinstance(pool, int):
        factors = [pool] * depth
    else:
        factors = [int(f) for f in pool]
    if len(factors) != depth:
        raise ValueError(f"model.pool lists {len(factors)} factors but model.depth is {depth}")
    if any(f < 2 for f in factors):
        raise ValueError(f"every downsampling factor must be >= 2, got {factors}")
    return factors


@dataclass(frozen=True)
class Geometry:
    """Length arithmetic of one U-Net configuration.

    Args:
        factors: downsampling factor per level (encoder order).
        kernel_size: kernel of the encoder/decoder convolutions (two per block).
        bottleneck_kernel: kernel of the dilated bottleneck convolutions.
        dilations: dilation of each bottleneck block.
        up: ``transpose``, ``nearest`` or ``linear``.
        padding: ``same`` or ``valid``.
    """

    factors: tuple[int, ...]
    kernel_size: int
    bottleneck_kernel: int
    dilations: tuple[int, ...]
    up: str = "transpose"
    padding: str = "same"

    @classmethod
    def from_options(cls, depth: int, pool: int | Sequence[int], kernel_size: int, bottleneck_blocks: int,
                     bottleneck_kernel: int, dilation_growth: int, up: str = "transpose",
                     padding: str = "same") -> Geometry:
        """The geometry of a U-Net with these options (those of :class:`~seq_unet.model.unet.SeqUNet`)."""
        pool = pool if isinstance(pool, int) else list(pool)
        return cls(tuple(level_factors(pool, int(depth))), int(kernel_size), int(bottleneck_kernel),
                   tuple(int(dilation_growth) ** b for b in range(int(bottleneck_blocks))), str(up), str(padding))

    def __post_init__(self):
        if self.padding not in PADDINGS:
            raise ValueError(f"unknown padding {self.padding!r}; choose one of {PADDINGS}")
        for name, k in (("kernel_size", self.kernel_size), ("bottleneck_kernel", self.bottleneck_kernel)):
            if k < 1 or k % 2 != 1:
                raise ValueError(f"model.{name} must be odd, got {k}")

    @property
    def multiple(self) -> int:
        """Usable input lengths step by this (the product of the downsampling factors)."""
        return math.prod(self.factors)

    def _trace(self, length: int) -> tuple[int, str]:
        """Output length, or ``(0, reason)`` when ``length`` cannot pass through."""
        if length <= 0:
            return 0, "it is not positive"
        if self.padding == "same":
            if length % self.multiple:
                return 0, f"it must be a multiple of {self.multiple} (the product of the downsampling factors)"
            return length, ""
        k1 = self.kernel_size - 1
        n = length - 2 * k1  # stem block: two unpadded convolutions
        skips = []
        for level, f in enumerate(self.factors):
            skips.append(n)
            if n <= 0 or n % f:
                return 0, (f"at level {level + 1} the feature map has {n} units, not a positive multiple of "
                           f"the downsampling factor {f}")
            n = n // f - 2 * k1
        n -= sum((self.bottleneck_kernel - 1) * d for d in self.dilations)
        for level, f in zip(reversed(range(len(self.factors))), reversed(self.factors)):
            if n <= 0:
                return 0, "the unpadded convolutions leave nothing at the bottleneck"
            n *= f
            if self.up == "linear":
                n -= 2 * (f // 2)  # interpolated ends that would lean on padding
            if self.up in ("nearest", "linear"):
                n -= k1
            if n <= 0 or n > skips[level] or (skips[level] - n) % 2:
                return 0, f"the decoder map at level {level} ({n} units) does not fit its skip map"
            n -= 2 * k1
        if n <= 0:
            return 0, "the unpadded convolutions leave no output"
        return n, ""

    def accepts(self, length: int) -> bool:
        return self._trace(length)[0] > 0

    def output_length(self, length: int) -> int:
        """Output length for an input of ``length`` (raises ``ValueError`` if unusable)."""
        self.check(length)
        return self._trace(length)[0]

    def offset(self, length: int) -> int:
        """Input bases before the first output base (0 with ``same`` padding)."""
        return (length - self.output_length(length)) // 2

    def nearest_valid_lengths(self, length: int) -> tuple[int | None, int]:
        """The usable lengths just below (None if there is none) and just above ``length``."""
        below = next((n for n in range(length - 1, 0, -1) if self.accepts(n)), None)
        above = length + 1
        while not self.accepts(above):
            above += 1
        return below, above

    def check(self, length: int) -> None:
        """Raise a ``ValueError`` naming the nearest usable lengths if ``length`` is unusable."""
        out, reason = self._trace(length)
        if out > 0:
            return
        below, above = self.nearest_valid_lengths(max(length, 1))
        near = f"{below} or {above}" if below else f"{above} (the shortest this network accepts)"
        raise ValueError(
            f"window length {length} bp cannot pass through this U-Net ({self.padding} padding, downsampling "
            f"{list(self.factors)}): {reason}; nearest usable lengths: {near}"
        )

    @property
    def receptive_field(self) -> int:
        """Theoretical receptive field, in bases, of one output base (equal in both modes).

        Follows the deepest path (stem, encoder, bottleneck tower, decoder),
        which dominates every shallower one, with the standard recurrence
        ``r += (k - 1) * dilation * jump`` where ``jump`` is the product of the
        strides so far.
        """
        r, jump = 1, 1
        k1 = self.kernel_size - 1
        r += 2 * k1  # stem block
        for f in self.factors:  # down then block
            r += (f - 1) * jump
            jump *= f
            r += 2 * k1 * jump
        for d in self.dilations:
            r += (self.bottleneck_kernel - 1) * d * jump
        for f in reversed(self.factors):
            if self.up == "linear":
                r += jump  # each fine unit reads two coarse neighbours
            jump //= f
            if self.up in ("nearest", "linear"):
                r += k1 * jump
            r += 2 * k1 * jump
        return r

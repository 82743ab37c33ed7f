"""Coordinate arithmetic of the U-Net, derived from its configuration.

The network uses "same" padding everywhere, so an input of length ``L`` gives an
output of length ``L`` registered base for base to the input. What the
configuration constrains is which ``L`` it accepts (a multiple of the product of
the downsampling factors) and how far each output base can see (the receptive
field). Both are computed here, never configured separately.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


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


def length_multiple(pool: int | Sequence[int], depth: int) -> int:
    """Input lengths must be a multiple of this (product of downsampling factors)."""
    return math.prod(level_factors(pool, depth))


def nearest_valid_lengths(length: int, multiple: int) -> tuple[int, int]:
    """The valid lengths just below and just above ``length``."""
    below = (length // multiple) * multiple
    above = below if below == length else below + multiple
    return max(below, multiple), above


def check_input_length(length: int, pool: int | Sequence[int], depth: int) -> None:
    """Raise a ``ValueError`` naming the nearest usable lengths if ``length`` is unusable."""
    multiple = length_multiple(pool, depth)
    if length <= 0 or length % multiple:
        below, above = nearest_valid_lengths(max(length, 1), multiple)
        raise ValueError(
            f"window length {length} bp cannot pass through this U-Net: with depth {depth} and "
            f"downsampling {level_factors(pool, depth)} the length must be a multiple of {multiple}; "
            f"nearest usable lengths: {below} or {above}"
        )


def receptive_field(
    depth: int,
    pool: int | Sequence[int],
    kernel_size: int,
    bottleneck_blocks: int,
    bottleneck_kernel: int,
    dilation_growth: int,
    up: str = "transpose",
) -> int:
    """Theoretical receptive field, in bases, of one output base.

    Follows the deepest path (stem, encoder, bottleneck tower, decoder), which
    dominates every shallower one. Uses the standard recurrence
    ``r += (k - 1) * dilation * jump`` with ``jump`` the product of strides so far.
    """
    factors = level_factors(pool, depth)
    r, jump = 1, 1

    def conv(k: int, dilation: int = 1) -> None:
        nonlocal r
        r += (k - 1) * dilation * jump

    conv(kernel_size)  # stem block, two convolutions
    conv(kernel_size)
    for f in factors:  # down then block
        r += (f - 1) * jump
        jump *= f
        conv(kernel_size)
        conv(kernel_size)
    for b in range(bottleneck_blocks):
        conv(bottleneck_kernel, dilation_growth**b)
    for f in reversed(factors):
        if up == "linear":
            r += jump  # each fine unit reads two coarse neighbours
        jump //= f
        if up in ("nearest", "linear"):
            conv(kernel_size)
        conv(kernel_size)
        conv(kernel_size)
    return r

"""Per-base values averaged into bins.

:func:`bin_means` is the one place where per-base values become bin means. Its
callers differ only in the rule that decides which bins count, passed
explicitly:

- ``min_valid_fraction=0`` (default): every bin with a valid base has a mean
  (plots, the genome-wide validation Pearson);
- ``min_valid_fraction=0.5``: at least half of a bin's bases are valid
  (metrics, the baselines' training targets);
- ``min_valid_fraction`` of the data config with ``tolerance=1e-9`` (the
  dataset's target bins: a fraction times the bin size can land a hair above a
  whole number, 0.55 * 100 = 55.000000000000007).

A partial last bin (a length that is not a multiple of the bin size) counts
its valid bases against a whole bin.
"""

from __future__ import annotations

import numpy as np


def bin_means(values: np.ndarray, size: int, valid: np.ndarray | None = None, *, min_valid_fraction: float = 0.0,
              tolerance: float = 0.0, empty: float = np.nan, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``values`` in consecutive bins of ``size`` along the last axis, over the valid bases.

    Args:
        values: per-base values ``(..., n)``.
        size: bases per bin; the result has ``ceil(n / size)`` bins.
        valid: bool, the shape of ``values``: the bases that count (default: the finite values).
        min_valid_fraction: a bin is kept when it has at least ``min_valid_fraction * size - tolerance``
            valid bases (0: every bin).
        tolerance: see ``min_valid_fraction``.
        empty: the mean of a bin without a valid base.
        dtype: the type the values are summed in (default: theirs).

    Returns:
        The means ``(..., ceil(n / size))`` (the sum over the valid bases divided by their count)
        and ``kept``, bool of the same shape.
    """
    values = np.asarray(values)
    if valid is None:
        valid = np.isfinite(values)
    n = values.shape[-1]
    nb = -(-n // size)
    pad = [(0, 0)] * (values.ndim - 1) + [(0, nb * size - n)]
    shape = values.shape[:-1] + (nb, size)
    summed = np.where(valid, values, 0)
    if dtype is not None:
        summed = summed.astype(dtype)
    sums = np.pad(summed, pad).reshape(shape).sum(-1)
    count = np.pad(valid, pad).reshape(shape).sum(-1)
    means = np.where(count > 0, sums / np.maximum(count, 1), empty)
    return means, count >= min_valid_fraction * size - tolerance

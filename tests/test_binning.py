"""The shared bin means against the binning each caller did on its own before, bit for bit: NaNs,
partial last bins, bins without a valid base."""

import warnings

import numpy as np
import pytest

from seq_unet.io.binning import bin_means


def plots_before(v, resolution):
    size = len(v)
    nb = -(-size // resolution)
    v = np.pad(v, (0, nb * resolution - size), constant_values=np.nan).reshape(nb, resolution)
    with np.errstate(invalid="ignore"):
        cnt = np.isfinite(v).sum(1)
        return np.where(cnt > 0, np.nansum(v, 1) / np.maximum(cnt, 1), np.nan)


def baseline_before(v, bin_size):
    size = len(v)
    nb = -(-size // bin_size)
    v = np.pad(v, (0, nb * bin_size - size), constant_values=np.nan).reshape(nb, bin_size)
    cnt = np.isfinite(v).sum(1)
    return np.where(cnt >= bin_size / 2, np.nansum(v, 1) / np.maximum(cnt, 1), np.nan)


def gc_before(codes, bin_size):
    n = len(codes)
    nb = -(-n // bin_size)
    known, gc = codes != 4, (codes == 1) | (codes == 2)
    bins = np.arange(n) // bin_size
    return np.bincount(bins, gc, nb) / np.maximum(np.bincount(bins, known, nb), 1)


def genome_val_before(pred, n_bins, r):
    padded = np.pad(pred, ((0, 0), (0, n_bins * r - pred.shape[1])), constant_values=np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an empty slice
        return np.nanmean(padded.reshape(len(pred), n_bins, r), axis=-1)


def metrics_before(pred, obs, resolution, min_valid_fraction=0.5):
    n = len(obs)
    nb = -(-n // resolution)
    pad = nb * resolution - n
    valid = np.isfinite(obs) & np.isfinite(pred)
    o = np.pad(np.where(valid, obs, 0.0).astype(np.float64), (0, pad)).reshape(nb, resolution)
    p = np.pad(np.where(valid, pred, 0.0).astype(np.float64), (0, pad)).reshape(nb, resolution)
    cnt = np.pad(valid, (0, pad)).reshape(nb, resolution).sum(1)
    keep = cnt >= min_valid_fraction * resolution
    with np.errstate(invalid="ignore"):
        return p.sum(1)[keep] / cnt[keep], o.sum(1)[keep] / cnt[keep]


def windows_before(values, valid, r, min_valid_fraction):
    t, n = values.shape
    v = np.where(valid, values, 0.0).reshape(t, n // r, r).astype(np.float64)
    cnt = valid.reshape(t, n // r, r).sum(-1)
    mask = cnt >= min_valid_fraction * r - 1e-9
    return np.where(mask, v.sum(-1) / np.maximum(cnt, 1), 0.0).astype(np.float32), mask


def values(rng, n, nan_fraction):
    """float32 values with NaN runs, a whole NaN stretch in the middle and NaN at the end."""
    v = (rng.normal(size=n) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
    v[rng.random(n) < nan_fraction] = np.nan
    v[n // 3 : n // 3 + n // 5] = np.nan
    v[-(n // 7) :] = np.nan
    return v


def same(a, b):
    """Equal dtype, shape and bits, but for the sign of NaN (0 / 0 gives -NaN on x86, np.nan is +NaN)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return a.tobytes() == b.tobytes()
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and a[~nan].tobytes() == b[~nan].tobytes()


CASES = [(n, size, frac) for n in (1, 7, 100, 1003, 5000) for size in (1, 3, 10, 100, 1000) for frac in (0.0, 0.3, 0.9)]


@pytest.mark.parametrize(("n", "size", "nan_fraction"), CASES)
def test_one_track_along_a_chromosome(n, size, nan_fraction):
    rng = np.random.default_rng(n * 31 + size)
    v = values(rng, n, nan_fraction)
    assert same(bin_means(v, size)[0], plots_before(v, size))
    means, kept = bin_means(v, size, min_valid_fraction=0.5)
    assert same(np.where(kept, means, np.nan), baseline_before(v, size))
    pred = values(rng, n, nan_fraction / 2)
    for fraction in (0.0, 0.5, 0.8):
        valid = np.isfinite(v) & np.isfinite(pred)
        p, keep = bin_means(pred, size, valid, min_valid_fraction=fraction, dtype=np.float64)
        o, _ = bin_means(v, size, valid, min_valid_fraction=fraction, dtype=np.float64)
        old_p, old_o = metrics_before(pred, v, size, fraction)
        assert same(p[keep], old_p) and same(o[keep], old_o)


@pytest.mark.parametrize(("n", "size", "nan_fraction"), CASES)
def test_gc_fraction(n, size, nan_fraction):
    codes = np.random.default_rng(n + size).integers(0, 5, n).astype(np.uint8)
    codes[: n // 4] = 4  # unknown bases, whole bins of them
    gc = (codes == 1) | (codes == 2)
    assert same(bin_means(gc, size, codes != 4, empty=0.0, dtype=np.float64)[0], gc_before(codes, size))


@pytest.mark.parametrize(("n", "size", "nan_fraction"), CASES)
def test_stitched_predictions(n, size, nan_fraction):
    rng = np.random.default_rng(n * 7 + size)
    pred = np.stack([values(rng, n, nan_fraction) for _ in range(3)])
    for n_bins in (-(-n // size), -(-n // size) + 2):  # the target can have more bins than the prediction
        padded = np.pad(pred, ((0, 0), (0, n_bins * size - n)), constant_values=np.nan)
        new = bin_means(padded, size, ~np.isnan(padded))[0].astype(np.float32)
        assert same(new, genome_val_before(pred, n_bins, size))


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.5, 0.55, 0.9, 1.0, 1e-12])
@pytest.mark.parametrize("r", [1, 3, 100, 1000])
def test_window_targets(fraction, r):
    rng = np.random.default_rng(r)
    values_ = np.stack([values(rng, 20 * r, 0.3) for _ in range(2)])
    valid = np.isfinite(values_) & (rng.random(values_.shape) < 0.9)
    values_[rng.random(values_.shape) < 0.1] = 5.0  # values under invalid bases do not count
    means, mask = bin_means(values_, r, valid, min_valid_fraction=fraction, tolerance=1e-9, empty=0.0,
                            dtype=np.float64)
    old_target, old_mask = windows_before(values_, valid, r, fraction)
    assert same(mask, old_mask) and same(np.where(mask, means, 0.0).astype(np.float32), old_target)


def test_rules():
    v = np.array([1, np.nan, 3, np.nan, np.nan, np.nan, 6], np.float32)
    means, kept = bin_means(v, 2, min_valid_fraction=0.5)
    assert np.array_equal(means, [1, 3, np.nan, 6], equal_nan=True)
    assert kept.tolist() == [True, True, False, True]  # the last bin: 1 of 2 bases, against a whole bin
    assert bin_means(v, 2, min_valid_fraction=1.0)[1].tolist() == [False, False, False, False]
    assert bin_means(v, 2, empty=0.0)[0].tolist() == [1, 3, 0, 6]
    assert bin_means(np.float32([0.55] * 100), 100, min_valid_fraction=0.55)[1].tolist() == [True]

"""Prediction tiling: stitched windows equal the untiled result exactly."""

from __future__ import annotations

import numpy as np
import pytest

from seq_unet.predict.tiling import plan_windows, stitch


def local_model(x: np.ndarray, radius: int) -> np.ndarray:
    """A 'model' with a known, finite receptive field: windowed sum with zero padding."""
    padded = np.pad(x, (radius, radius))
    c = np.cumsum(np.concatenate([[0.0], padded]))
    return c[2 * radius + 1 :] - c[: -2 * radius - 1]


@pytest.mark.parametrize("chrom_length", [1, 57, 100, 101, 333, 1000, 1001, 4321])
@pytest.mark.parametrize("length, crop", [(100, 10), (100, 0), (64, 31)])
def test_every_base_written_once(chrom_length, length, crop):
    pieces = plan_windows(chrom_length, length, crop)
    cover = np.zeros(chrom_length, int)
    for p in pieces:
        assert 0 <= p.start and p.keep_from >= p.start and p.keep_to <= p.start + length
        cover[p.keep_from : p.keep_to] += 1
    assert (cover == 1).all()
    assert pieces[0].keep_from == 0 and pieces[-1].keep_to == chrom_length


@pytest.mark.parametrize("chrom_length", [37, 100, 250, 999, 5003])
def test_stitched_equals_untiled(chrom_length):
    rng = np.random.default_rng(chrom_length)
    radius, length, crop = 6, 100, 8  # crop >= radius: inner edges see full context
    x = rng.integers(-50, 50, size=chrom_length).astype(float)  # integer sums are exact
    full = local_model(x, radius)
    pieces = plan_windows(chrom_length, length, crop)
    outs = []
    for p in pieces:
        window = np.zeros(length)
        seg = x[p.start : p.start + length]
        window[: len(seg)] = seg  # padding past the chromosome end, as with unknown bases
        outs.append(local_model(window, radius)[None])
    stitched = stitch(pieces, outs, chrom_length)[0]
    np.testing.assert_array_equal(stitched, full)


def test_stitch_detects_seams_when_crop_too_small():
    """Sanity check of the test itself: without enough crop the stitched result differs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    pieces = plan_windows(1000, 100, 0)
    outs = [local_model(np.pad(x[p.start : p.start + 100], (0, max(0, p.start + 100 - 1000))), 6)[None]
            for p in pieces]
    assert not np.array_equal(stitch(pieces, outs, 1000)[0], local_model(x, 6))


@pytest.mark.parametrize("chrom_length", [57, 250, 999, 5003])
@pytest.mark.parametrize("blend", [2, 16, 40])
def test_cross_fade_weights_sum_to_one_and_stay_inside_the_windows(chrom_length, blend):
    length, crop = 100, 20
    pieces = plan_windows(chrom_length, length, crop, blend)
    total = np.zeros(chrom_length)
    layers = np.zeros(chrom_length, int)
    for p in pieces:
        lo, hi = p.span
        assert p.start <= lo and hi <= p.start + length, p  # within the window
        assert p.fade_from <= crop and p.fade_to <= crop and max(p.fade_from, p.fade_to) <= blend // 2
        w = p.weights()
        assert w.shape == (hi - lo,) and (w > 0).all() and (w <= 1).all()
        total[lo:hi] += w
        layers[lo:hi] += 1
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert layers.max() <= 2
    assert pieces[0].fade_from == 0 and pieces[-1].fade_to == 0  # no cross-fade at the chromosome ends


@pytest.mark.parametrize("chrom_length", [250, 999, 5003])
def test_cross_faded_stitch_equals_untiled_when_the_crop_covers_context_and_fade(chrom_length):
    rng = np.random.default_rng(chrom_length)
    radius, length, blend = 6, 100, 16
    crop = radius + blend // 2
    x = rng.integers(-50, 50, size=chrom_length).astype(float)
    pieces = plan_windows(chrom_length, length, crop, blend)
    assert any(p.fade_to for p in pieces)
    outs = []
    for p in pieces:
        window = np.zeros(length)
        seg = x[p.start : p.start + length]
        window[: len(seg)] = seg
        outs.append(local_model(window, radius)[None])
    np.testing.assert_allclose(stitch(pieces, outs, chrom_length)[0], local_model(x, radius), atol=1e-9)


def test_cross_fade_turns_steps_between_windows_into_ramps():
    """Windows that disagree by a constant (each one's own uncertainty level, say) meet without a step."""
    length, crop, blend, n = 100, 20, 30, 1000
    rng = np.random.default_rng(1)
    for b in (0, blend):
        pieces = plan_windows(n, length, crop, b)
        levels = rng.uniform(0, 1, len(pieces))
        track = stitch(pieces, [np.full((1, length), v) for v in levels], n)[0]
        jump = np.abs(np.diff(track)).max()
        if b == 0:
            assert jump > 0.1  # hard cuts step
        else:
            assert jump <= 1.0 / (2 * (blend // 2)) + 1e-9  # a ramp over the fade

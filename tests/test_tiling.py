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

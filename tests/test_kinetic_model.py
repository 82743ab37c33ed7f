"""The kinetic head inside the model: loss masks at window edges, stitching, the initiation track,
the position channel, and the genome-wide validation score."""

from __future__ import annotations

import numpy as np
import pybigtools
import pytest
import pytorch_lightning as pl
import torch

from seq_unet.evaluate.genome_val import Chromosome, score_chromosomes
from seq_unet.io.genome import Genome
from seq_unet.lit import SeqUNetModule
from seq_unet.model.heads import check_window
from seq_unet.model.inputs import encode_input, position_channel, reverse_complement_input
from seq_unet.predict.forward import predict_batch
from seq_unet.predict.genome import predict_genome, window_crop
from seq_unet.predict.tiling import plan_windows
from tests.conf_values import conf_model, train_options

# a small U-Net; max-pooling and concatenated skips, as when these tests' tolerances were set (with the
# configured average pooling and added skips, the untrained network's Pearson for one track is about 1e-5,
# where a relative tolerance means nothing)
UNET = dict(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=1, dropout=0.0, down="maxpool",
            skip="concat")
# one rate track per track (shared_rates has a test of its own)
KINETIC = dict(head="kinetic",
               kinetic=conf_model(kinetic=dict(bin_size=100, reach=1000, shared_rates=False))["kinetic"])
WINDOW = 4000  # a multiple of the U-Net's 16 and of the 100-bp bins


def _module(model: dict | None = None, tracks=("a", "b"), window: int = WINDOW) -> SeqUNetModule:
    torch.manual_seed(0)
    module = SeqUNetModule(tracks=list(tracks), window_length=window, target_resolution=100,
                           target_mean=[1.5] * len(tracks), target_std=[0.2] * len(tracks),
                           model=conf_model(**{**UNET, **KINETIC, **(model or {})}), **train_options())
    with torch.no_grad():  # contrasting rates, so that the timing varies along the window
        module.net.head.weight.mul_(20.0)
    return module.eval()


def _save(module: SeqUNetModule, path) -> str:
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": pl.__version__}, path)
    return str(path)


def test_loss_leaves_out_the_reach_at_inner_window_edges_but_not_at_chromosome_ends():
    module = _module()
    n_bins = WINDOW // 100
    margin = module.loss_margin_bins()
    assert margin == 10  # reach 1000 bp in 100-bp bins
    batch = {"y": torch.zeros(3, 2, n_bins), "mask": torch.ones(3, 2, n_bins, dtype=torch.bool),
             "ends": torch.tensor([[False, False], [True, False], [True, True]])}
    _, mask = module._targets(batch)
    inner = torch.zeros(n_bins, dtype=torch.bool)
    inner[margin : n_bins - margin] = True
    assert torch.equal(mask[0, 0], inner)
    left_end = inner.clone()
    left_end[:margin] = True
    assert torch.equal(mask[1, 1], left_end)
    assert mask[2].all()
    # a window with no end flags at all is treated as inside its chromosome
    _, mask = module._targets({k: v for k, v in batch.items() if k != "ends"})
    assert torch.equal(mask[2, 0], inner)


def test_a_window_too_short_for_the_reach_is_refused_with_the_length_needed():
    with pytest.raises(ValueError, match="at least 2100 bp"):
        check_window(conf_model(**UNET, **KINETIC), 1600, 100)
    with pytest.raises(ValueError, match="padding=same"):
        check_window(conf_model(**UNET, **KINETIC, padding="valid"), 4000, 100)
    check_window(conf_model(**UNET, **KINETIC), 2400, 100)  # long enough: no error


def test_kinetic_predictions_are_bin_values_interpolated_and_the_loss_sees_the_bins():
    module = _module()
    x = torch.from_numpy(encode_input(np.random.default_rng(0).integers(0, 4, (2, WINDOW)).astype(np.uint8)))
    with torch.no_grad():
        bins = module._binned(x)
        per_base = module(x)
    assert bins.shape == (2, 2, WINDOW // 100) and per_base.shape == (2, 2, WINDOW)
    # the per-base track is linear between bin centres: each bin's value is reached at its centre
    # (between bases 49 and 50 of the bin), up to the curvature over one base
    torch.testing.assert_close(0.5 * (per_base[..., 49::100] + per_base[..., 50::100])[..., 1:-1], bins[..., 1:-1],
                               atol=5e-3, rtol=0)
    second = per_base[..., 149:-100:100] - per_base[..., 49:-200:100]  # one bin apart: the slope between centres
    torch.testing.assert_close(second, bins[..., 1:39] - bins[..., :38], atol=5e-3, rtol=0)
    assert bins.std() > 0.01  # the timing varies


def test_unknown_bases_fire_no_origin():
    module = _module()
    codes = np.random.default_rng(1).integers(0, 4, (1, WINDOW)).astype(np.uint8)
    codes[0, 1000:2000] = 4
    with torch.no_grad():
        out = module.predict_outputs(torch.from_numpy(encode_input(codes)), rates=True)
    rates = out[0, 2:]
    assert (rates[:, 1000:2000] == 0).all() and (rates[:, :1000] > 0).all()


def test_position_channel_and_its_reverse_complement():
    pc = position_channel(np.array([-2, 95]), 10, 100, scale=10.0)[:, 0]
    assert pc.shape == (2, 10)
    assert pc[0, 0] == 0 and pc[0, 1] == 0 and pc[0, 2] == 1.0  # past the start, then the first base
    np.testing.assert_allclose(pc[0, 3], np.exp(-0.1), rtol=1e-6)
    assert pc[1, 4] == 1.0 and (pc[1, 5:] == 0).all()  # the last base (99), then past the end
    x = torch.from_numpy(encode_input(np.array([[0, 1, 2, 3, 4]], np.uint8), 10.0, np.array([0]), 5))
    rc = reverse_complement_input(x)
    assert rc.shape == (1, 5, 5)
    # A,C,G,T,N -> reverse complement N,A,C,G,T; the position channel only reversed
    np.testing.assert_array_equal(rc[0, :4].argmax(0).numpy()[1:], [0, 1, 2, 3])
    assert rc[0, :4, 0].sum() == 0
    torch.testing.assert_close(rc[0, 4], x[0, 4].flip(0))


def test_stitched_kinetic_prediction_equals_each_windows_own_where_the_geometry_says(tiny_prepared, tmp_path):
    """Every kept base is at least the reach plus half the smoothing from an inner window edge."""
    module = _module(model={"position_scale": 5000.0})
    ckpt = _save(module, tmp_path / "k.ckpt")
    paths = predict_genome(ckpt, tiny_prepared, tmp_path / "out", batch_size=3, precision=1e-4, device="cpu",
                           rate_precision=1e-5, blend=0)
    assert set(paths) == {"a", "b", "a.initiation", "b.initiation"}
    genome = Genome(tiny_prepared)
    width = 101
    crop = window_crop(module, WINDOW, width)
    assert crop >= module.context + width // 2
    for name in ("a", "b.initiation"):
        bw = pybigtools.open(str(paths[name]))
        got = {c: np.asarray(bw.values(c, 0, n, fillna=None)) for c, n in genome.sizes.items()}
        bw.close()
        row = {"a": 0, "b.initiation": 3}[name]
        for chrom, size in genome.sizes.items():
            assert got[chrom].shape == (size,) and np.isfinite(got[chrom]).all()
            for p in plan_windows(size, WINDOW, crop):
                codes = genome.codes(chrom, p.start, p.start + WINDOW)[None]
                inside = np.clip([[-p.start, size - p.start]], 0, WINDOW)
                direct = predict_batch(module, codes, torch.device("cpu"), smooth=width, inside=inside,
                                       starts=np.array([p.start]), chrom_size=size, rates=True)[0][0, row]
                lo, hi = p.keep_from, min(p.keep_to, size)
                np.testing.assert_allclose(got[chrom][lo:hi], direct[lo - p.start : hi - p.start], atol=1e-4,
                                           err_msg=f"{name} {chrom} window {p}")
    rates = np.concatenate([v for v in got.values()])
    assert (rates >= 0).all()


def test_genome_validation_score_equals_the_score_of_the_predicted_track(tiny_prepared):
    """The callback's score is the pooled Pearson of the stitched prediction in the target bins."""
    module = _module()
    genome = Genome(tiny_prepared)
    rng = np.random.default_rng(3)
    chroms = []
    for name in ("chrA", "chrC"):
        size = genome.sizes[name]
        n_bins = -(-size // 100)
        target = rng.normal(size=(2, n_bins)).astype(np.float32)
        mask = rng.random((2, n_bins)) > 0.2
        chroms.append(Chromosome(name, genome.codes(name, 0, size), target, mask))
    crop = window_crop(module, WINDOW, 1)
    r = score_chromosomes(module, chroms, torch.device("cpu"), WINDOW, crop)
    preds, targets, masks = [], [], []
    for c in chroms:
        full = np.zeros((2, len(c.codes)), np.float32)
        for p in plan_windows(len(c.codes), WINDOW, crop):
            codes = genome.codes(c.name, p.start, p.start + WINDOW)[None]
            out = predict_batch(module, codes, torch.device("cpu"), starts=np.array([p.start]),
                                chrom_size=len(c.codes))[0][0]
            full[:, p.keep_from : p.keep_to] = out[:, p.keep_from - p.start : p.keep_to - p.start]
        pad = c.target.shape[1] * 100 - len(c.codes)
        binned = np.nanmean(np.pad(full, ((0, 0), (0, pad)), constant_values=np.nan).reshape(2, -1, 100), -1)
        preds.append(binned)
        targets.append(c.target)
        masks.append(c.mask)
    p, t, m = (np.concatenate(a, axis=1) for a in (preds, targets, masks))
    expected = [np.corrcoef(p[i][m[i]], t[i][m[i]])[0, 1] for i in range(2)]
    np.testing.assert_allclose(r, expected, rtol=1e-5)


def test_shared_rates_give_every_track_the_same_initiation_track_and_timing_up_to_its_affine_map(tiny_prepared,
                                                                                                  tmp_path):
    module = _module(model={"kinetic": {**KINETIC["kinetic"], "shared_rates": True}})
    assert module.head.n_channels == 1 and module.net.head.out_channels == 1
    with torch.no_grad():  # tracks of their own scale and sign of shift
        module.head.shift.copy_(torch.tensor([0.3, -0.2]))
        module.head.log_spread.add_(torch.tensor([0.0, 0.7]))
    x = torch.from_numpy(encode_input(np.random.default_rng(2).integers(0, 4, (2, WINDOW)).astype(np.uint8)))
    with torch.no_grad():
        bins = module._binned(x)
    assert bins.std() > 0.01
    # one time per bin, seen through each track's own affine map: b = shift_b + (a - shift_a) * spread_a / spread_b
    ratio = torch.exp(module.head.log_spread[0] - module.head.log_spread[1]).item()
    torch.testing.assert_close(bins[:, 1], -0.2 + (bins[:, 0] - 0.3) * ratio, atol=1e-5, rtol=0)
    paths = predict_genome(_save(module, tmp_path / "k.ckpt"), tiny_prepared, tmp_path / "out", batch_size=3,
                           precision=1e-4, device="cpu", rate_precision=1e-5, blend=0)
    assert set(paths) == {"a", "b", "a.initiation", "b.initiation"}
    a, b = (pybigtools.open(str(paths[n])) for n in ("a.initiation", "b.initiation"))
    try:
        for chrom, size in Genome(tiny_prepared).sizes.items():
            va, vb = (np.asarray(bw.values(chrom, 0, size, fillna=None)) for bw in (a, b))
            assert np.isfinite(va).all() and (va >= 0).all() and va.std() > 0
            np.testing.assert_array_equal(va, vb)
    finally:
        a.close()
        b.close()

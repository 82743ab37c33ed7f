"""Coarse target resolutions (mammalian Repli-seq at 5 and 50 kb): the evaluation follows the data's
resolution, the model presets conf/model/unet_5kb.yaml and unet_50kb.yaml take the windows they name,
and windows, loss pooling, smoothing and evaluation binning give known answers at 5 and 50 kb."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from seq_unet.cli.main import config_dir
from seq_unet.config import check_model_length, register
from seq_unet.data.windows import WindowSpec, bin_targets
from seq_unet.errors import InputError
from seq_unet.evaluate.metrics import evaluate
from seq_unet.io.bigwig_write import write_bigwig
from seq_unet.io.intervals import tile_starts
from seq_unet.lit import SeqUNetModule
from seq_unet.model.geometry import Geometry
from seq_unet.predict.forward import running_mean
from seq_unet.predict.genome import _smooth_width, blend_width, window_crop
from tests.conf_values import linear_model, train_options

# (preset, target resolution, the window its comment names, bins per window)
PRESETS = [("unet_5kb", 5_000, 2_000_000, 400), ("unet_50kb", 50_000, 5_000_000, 100)]
# a small network whose downsampling product (100) divides a window of two 50-kb bins
SMALL = linear_model(depth=2, pool=[10, 10], base_channels=4, max_channels=8, kernel_size=3, bottleneck_blocks=1,
                   dropout=0.0)


def _compose(*overrides: str):
    register()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _evaluation(cfg) -> tuple[list[int], int, int]:
    return list(cfg.evaluate.resolutions), cfg.evaluate.baseline_bin, cfg.sweep.resolution


def test_the_yeast_demo_keeps_its_bin_sizes():
    assert _evaluation(_compose()) == ([1000, 10000], 1000, 1000)


@pytest.mark.parametrize("resolution", [100, 5_000, 50_000])
def test_the_evaluation_follows_the_target_resolution(resolution):
    cfg = _compose(f"data.target_resolution={resolution}")
    assert _evaluation(cfg) == ([resolution, 10 * resolution], resolution, resolution)
    resolved = OmegaConf.to_container(cfg.evaluate, resolve=True)  # what the workflow's digests hash
    assert resolved["resolutions"] == [resolution, 10 * resolution] and resolved["baseline_bin"] == resolution


def test_an_override_of_the_evaluation_still_wins():
    cfg = _compose("data.target_resolution=5000", "evaluate.resolutions=[5000,25000]", "evaluate.baseline_bin=1000")
    assert _evaluation(cfg) == ([5000, 25000], 1000, 5000)


@pytest.mark.parametrize("preset, resolution, window, bins", PRESETS)
def test_a_preset_changes_the_downsampling_and_head_and_takes_its_windows(preset, resolution, window, bins):
    default = _compose(f"data.target_resolution={resolution}")
    cfg = _compose(f"model={preset}", f"data.target_resolution={resolution}", f"data.window_length={window}")
    a, b = OmegaConf.to_container(default.model), OmegaConf.to_container(cfg.model)
    # the downsampling, and the linear head without the bottleneck path (the kinetic head is sized for yeast)
    assert {k for k in a if a[k] != b[k]} == {"pool", "head", "coarse_head"}
    assert (b["head"], b["coarse_head"]) == ("linear", False)
    assert window // resolution == bins
    for length in (window, resolution, 3 * resolution, window + resolution):  # every multiple of the bin
        check_model_length(cfg, length)
    with pytest.raises(InputError, match="multiple of"):
        check_model_length(cfg, window + resolution // 2)
    lcm = {5_000: 640_000, 50_000: 3_200_000}[resolution]  # the default model cannot take the window
    with pytest.raises(InputError, match=rf"multiple of 1024.*lcm\(1024, {resolution}\) = {lcm} bp"):
        check_model_length(default, window)


def test_the_presets_see_about_a_replication_domain_or_more():
    """Receptive fields against domains of 0.4-0.8 Mb (the README's figures)."""
    fields = {}
    for preset, *_ in PRESETS:
        m = _compose(f"model={preset}").model
        fields[preset] = Geometry.from_options(m.depth, list(m.pool), m.kernel_size, m.bottleneck_blocks,
                                               m.bottleneck_kernel, m.dilation_growth, m.up, m.padding)
    assert (fields["unet_5kb"].multiple, fields["unet_5kb"].receptive_field) == (5_000, 750_552)
    assert (fields["unet_50kb"].multiple, fields["unet_50kb"].receptive_field) == (10_000, 1_465_552)


def test_windows_at_50_kb_start_on_bins_and_hold_whole_bins():
    spec = WindowSpec(200_000, 100_000, 50_000, 0.5, 50_000)
    assert (spec.n_bins, spec.stored_length) == (4, 300_000)
    for bad in ({"length": 125_000}, {"stride": 75_000}, {"max_shift": 25_000}):
        with pytest.raises(InputError, match="multiple"):
            WindowSpec(**{"length": 200_000, "stride": 100_000, "resolution": 50_000, "min_valid_fraction": 0.5,
                          "max_shift": 0, **bad})
    starts = tile_starts(1_234_567, 200_000, 100_000, 50_000)
    assert (starts % 50_000 == 0).all() and starts[-1] + 200_000 == 1_250_000  # the end rounded up to a bin
    values = np.arange(200_000, dtype=np.float32)[None] % 7
    valid = np.ones_like(values, dtype=bool)
    valid[0, 50_000:80_000] = False  # 40 % of the second bin measured: below min_valid_fraction
    target, mask = bin_targets(values, valid, spec)
    expected = [values[0, i * 50_000:(i + 1) * 50_000].mean() for i in range(4)]
    assert mask.tolist() == [[True, False, True, True]]
    np.testing.assert_allclose(target[0, [0, 2, 3]], np.array(expected)[[0, 2, 3]], rtol=1e-6)


@pytest.mark.parametrize("resolution", [5_000, 50_000])
def test_the_loss_pools_the_per_base_output_into_bin_means(resolution):
    torch.manual_seed(0)
    window = 2 * resolution
    module = SeqUNetModule(["a", "b"], window, resolution, [0.0, 0.0], [1.0, 1.0], model=SMALL,
                           **train_options()).eval()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, window)), 4).permute(0, 2, 1).float()
    y = torch.tensor([[[0.5, -1.0], [2.0, 0.0]]])
    mask = torch.tensor([[[True, True], [False, True]]])
    with torch.no_grad():
        loss, pooled = module._loss({"x": x, "y": y, "mask": mask})
        per_base = module(x).numpy()
    means = per_base.reshape(1, 2, 2, resolution).mean(-1)  # bin means of the per-base output
    np.testing.assert_allclose(pooled.numpy(), means, rtol=1e-5, atol=1e-5)
    d = (means - y.numpy())[mask.numpy()]
    assert loss.item() == pytest.approx(float((d * d).mean()), rel=1e-5)


@pytest.mark.parametrize("resolution", [5_000, 50_000])
def test_smoothing_at_the_training_resolution_is_the_centred_mean(resolution):
    width = _smooth_width("auto", resolution)
    assert width == resolution + 1  # odd: centred on the base
    rng = np.random.default_rng(1)
    n, half = 3 * resolution, width // 2
    y = rng.normal(size=(1, 1, n))
    out = running_mean(torch.from_numpy(y), width).numpy()[0, 0]
    for i in (0, half - 1, half, n // 2, n - half - 1, n - 1):  # near the ends: over the bases there are
        lo, hi = max(i - half, 0), min(i + half + 1, n)
        assert out[i] == pytest.approx(y[0, 0, lo:hi].mean(), abs=1e-9)


def test_the_prediction_crop_leaves_room_for_a_50_kb_running_mean():
    module = SeqUNetModule(["a"], 100_000, 50_000, [0.0], [1.0], model=SMALL, **train_options())
    width, blend = _smooth_width("auto", 50_000), blend_width("auto", 100_000)
    # half the running mean plus half the cross-fade, more than the default window // 8
    assert window_crop(module, 100_000, width, None, blend) == 25_000 + 3_125
    assert window_crop(module, 5_000_000, width, None, blend_width("auto", 5_000_000)) == 625_000


def test_the_evaluation_bins_at_50_and_500_kb(tmp_path):
    resolutions = list(_compose("data.target_resolution=50000").evaluate.resolutions)
    assert resolutions == [50_000, 500_000]
    sizes = {"a": 1_250_000, "b": 600_000}
    rng = np.random.default_rng(2)
    truth = {c: np.repeat(rng.normal(size=-(-n // 50_000)), 50_000)[:n].astype(np.float32) for c, n in sizes.items()}
    write_bigwig(tmp_path / "obs.bw", sizes, truth.items(), precision=0)
    write_bigwig(tmp_path / "neg.bw", sizes, ((c, -v) for c, v in truth.items()), precision=0)
    df = evaluate({"neg": {"t": str(tmp_path / "neg.bw")}}, {"t": str(tmp_path / "obs.bw")}, sizes,
                  {"a": "test", "b": "train"}, resolutions)
    rows = df.set_index(["chrom", "resolution_bp"])
    # chrA: 25 bins of 50 kb; 3 of 500 kb, the last half measured (half a bin is enough)
    assert rows.loc[("a", 50_000), "n_bins"] == 25 and rows.loc[("a", 500_000), "n_bins"] == 3
    assert rows.loc[("b", 50_000), "n_bins"] == 12 and rows.loc[("b", 500_000), "n_bins"] == 1
    assert rows.loc[("a", 50_000), "pearson"] == pytest.approx(-1.0)
    coarse = truth["a"].astype(np.float64)
    means = np.array([coarse[i:i + 500_000].mean() for i in range(0, 1_250_000, 500_000)])
    assert rows.loc[("a", 500_000), "mse"] == pytest.approx(float(np.mean((2 * means) ** 2)), rel=1e-6)

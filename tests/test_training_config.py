"""Training settings from the configuration: the learning-rate schedule, the callbacks and the logger."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from seq_unet.cli.main import config_dir
from seq_unet.config import register
from seq_unet.errors import InputError
from seq_unet.lit import SeqUNetModule
from seq_unet.training import _callbacks, _loggers
from tests.conf_values import LINEAR_OVERRIDES, linear_model, train_options
from tests.workflow_helpers import write_tiny_config

MODEL = linear_model(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=2)


def _schedule(total: int, **kw) -> list[float]:
    """The learning rate of each of ``total`` optimiser steps of a module built with ``kw``."""
    module = SeqUNetModule(tracks=["a"], window_length=2048, target_resolution=100, target_mean=[0.0],
                           target_std=[1.0], model=MODEL, **train_options(**kw))
    module._trainer = SimpleNamespace(estimated_stepping_batches=total)  # what configure_optimizers reads
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lrs.append(opt.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("start, floor", [(0.01, 0.01), (0.1, 0.2)])
def test_the_schedule_starts_and_ends_where_configured(start, floor):
    lr, total = 0.002, 100
    lrs = _schedule(total, lr=lr, warmup_fraction=0.1, warmup_start_factor=start, min_lr_ratio=floor)
    assert math.isclose(lrs[0], lr * start, rel_tol=1e-9)  # step 0: the warm-up's start
    assert math.isclose(max(lrs), lr, rel_tol=1e-9)  # the peak, after the warm-up's 10 steps
    assert math.isclose(lrs[total], lr * floor, rel_tol=1e-9)  # the end of the cosine decay
    assert min(lrs[10:]) >= lr * floor * (1 - 1e-9)


def test_the_default_schedule_starts_and_ends_at_one_hundredth_of_lr():
    cfg = _compose()
    assert cfg.train.warmup_start_factor == 0.01 and cfg.train.min_lr_ratio == 0.01
    lrs = _schedule(50)  # the configuration's settings
    assert math.isclose(lrs[0], 0.002 * 0.01, rel_tol=1e-9) and math.isclose(lrs[-1], 0.002 * 0.01, rel_tol=1e-9)


def _compose(*overrides: str):
    register()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))


EXE = str(Path(sys.executable).parent / "seq-unet")
TINY = [*LINEAR_OVERRIDES,
        "model.depth=2", "model.pool=4", "model.base_channels=8", "model.kernel_size=5", "model.bottleneck_blocks=2",
        "trainer.max_epochs=2", "train.batch_size=4", "train.num_workers=0", "train.select_on=windows"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=dict(os.environ, HYDRA_FULL_ERROR="0"))


def _kinds(callbacks) -> list[str]:
    return [type(c).__name__ for c in callbacks]


def test_the_default_callbacks_are_the_former_ones(tmp_path):
    best, callbacks = _callbacks(_compose("train.select_on=windows"), tmp_path)
    assert _kinds(callbacks) == ["ModelCheckpoint", "ModelCheckpoint", "LearningRateMonitor", "NormStatistics",
                                 "EarlyStopping"]
    assert callbacks[0] is best and best.save_top_k == 1 and best.monitor == "val/pearson"
    assert callbacks[2].logging_interval == "epoch" and callbacks[3].windows == 32 and callbacks[4].patience == 15
    _, callbacks = _callbacks(_compose(), tmp_path)  # selection on the genome: its validation comes first
    assert _kinds(callbacks)[0] == "GenomeValidation" and callbacks[1].monitor == "val/genome_pearson"


def test_the_former_train_keys_still_set_ema_and_early_stopping(tmp_path):
    cfg = _compose("train.select_on=windows", "train.ema_decay=0.99", "train.early_stopping_patience=0")
    assert cfg.callbacks.ema.decay == 0.99 and cfg.callbacks.early_stopping.patience == 0
    _, callbacks = _callbacks(cfg, tmp_path)
    assert _kinds(callbacks) == ["ModelCheckpoint", "ModelCheckpoint", "LearningRateMonitor", "EMAWeightAveraging",
                                 "NormStatistics"]


def test_callback_settings_from_the_callbacks_group(tmp_path):
    cfg = _compose("train.select_on=windows", "callbacks.checkpoint.top_k=3", "callbacks.early_stopping.patience=4",
                   "callbacks.early_stopping.min_delta=0.001", "callbacks.lr_monitor.logging_interval=null",
                   "callbacks.norm_stats.windows=16")
    best, callbacks = _callbacks(cfg, tmp_path)
    assert _kinds(callbacks) == ["ModelCheckpoint", "ModelCheckpoint", "NormStatistics", "EarlyStopping"]
    assert best.save_top_k == 3 and callbacks[3].patience == 4 and callbacks[3].min_delta == 0.001
    assert callbacks[2].windows == 16
    with pytest.raises(InputError, match="logging_interval must be epoch, step or null"):
        _callbacks(_compose("callbacks.lr_monitor.logging_interval=hourly"), tmp_path)


def test_wandb_without_its_package_is_a_clear_error(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    with pytest.raises(InputError, match=r"logger=wandb needs the wandb package.*pip install wandb"):
        _loggers(_compose("logger=wandb"), tmp_path)


def test_the_csv_logger_alone_by_default(tmp_path):
    (logger,) = _loggers(_compose(), tmp_path)
    assert type(logger).__name__ == "CSVLogger" and Path(logger.log_dir) == tmp_path / "logs"


@pytest.fixture(scope="module")
def tiny_work(tiny_genome, tmp_path_factory) -> tuple[Path, list[str]]:
    """A folder with the tiny data set extracted, and the overrides that select it."""
    work = tmp_path_factory.mktemp("loggers")
    common = ["data=tiny", f"hydra.searchpath=[file://{write_tiny_config(work, tiny_genome)}]"]
    for step in ("genome", "windows", "extract"):
        out = _run(step, *common, *TINY[:5], cwd=work)
        assert out.returncode == 0, out.stderr[-3000:]
    return work, common


@pytest.mark.slow
def test_training_with_the_tensorboard_logger(tiny_work):
    work, common = tiny_work
    out = _run("train", *common, *TINY, "logger=tensorboard", cwd=work)
    train = work / "results" / "tiny" / "train"
    assert out.returncode == 0, out.stderr[-3000:]
    assert list((train / "tensorboard").glob("events.out.tfevents.*"))
    metrics = pd.read_csv(train / "logs" / "metrics.csv")  # the CSV table as ever
    assert metrics.dropna(subset=["val/pearson"]).epoch.tolist() == [0, 1]
    assert (train / "best.ckpt").exists()


def test_validation_pearson_per_track_zero_where_undefined_and_their_mean():
    import torch

    from seq_unet.lit import MeanOfMetrics, TrackPearson

    tracks = [TrackPearson(), TrackPearson()]
    mean = MeanOfMetrics(tracks)
    tracks[0].update(torch.tensor([0.0, 1.0, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0, 4.5]))
    tracks[1].update(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([5.0, 5.0, 5.0]))  # constant: undefined
    mean.update()
    r = torch.corrcoef(torch.tensor([[0.0, 1.0, 2.0, 4.0], [1.0, 2.0, 3.0, 4.5]]))[0, 1]
    assert torch.isclose(tracks[0].compute(), r) and tracks[1].compute() == 0.0
    assert torch.isclose(mean.compute(), r / 2)
    assert not list(mean.children())  # the tracks' metrics are the module's, not registered twice


@pytest.mark.slow
def test_the_saved_checkpoints_hold_norm_statistics_recomputed_for_their_weights(tiny_work):
    """Every checkpoint is written after a validation, and so holds the statistics that NormStatistics
    recomputed for its weights; with the recomputation off it holds Lightning's running averages."""
    import torch

    from seq_unet.checkpoint import load_module
    from seq_unet.norm_stats import NormStatistics, batch_norms, recompute_norm_stats

    work, common = tiny_work
    train = work / "results" / "tiny" / "train"
    agree = {}
    for windows in (5, 0):
        out = _run("train", *common, *TINY, f"callbacks.norm_stats.windows={windows}", "train.resume=false",
                   cwd=work)
        assert out.returncode == 0, out.stderr[-3000:]
        for name in ("best.ckpt", "checkpoints/last.ckpt"):
            module = load_module(train / name)
            saved = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in batch_norms(module.net)]
            assert saved
            calibration = NormStatistics(str(work / "results" / "tiny" / "dataset"), windows=5, batch_size=4,
                                         position_scale=None)
            recompute_norm_stats(module.net, calibration.batches())
            agree[windows, name] = all(
                torch.allclose(m, bn.running_mean, atol=1e-5) and torch.allclose(v, bn.running_var, atol=1e-5)
                for (m, v), bn in zip(saved, batch_norms(module.net)))
    assert agree == {(5, "best.ckpt"): True, (5, "checkpoints/last.ckpt"): True,
                     (0, "best.ckpt"): False, (0, "checkpoints/last.ckpt"): False}

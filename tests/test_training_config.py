"""Training settings from the configuration: the learning-rate schedule, the callbacks and the logger."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from seq_unet.cli.main import config_dir
from seq_unet.config import register
from seq_unet.lit import SeqUNetModule

MODEL = dict(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=2)


def _schedule(total: int, **kw) -> list[float]:
    """The learning rate of each of ``total`` optimiser steps of a module built with ``kw``."""
    module = SeqUNetModule(tracks=["a"], window_length=2048, target_resolution=100, target_mean=[0.0],
                           target_std=[1.0], model=MODEL, **kw)
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
    lrs = _schedule(50, lr=0.002)  # the module's defaults are the configuration's
    assert math.isclose(lrs[0], 0.002 * 0.01, rel_tol=1e-9) and math.isclose(lrs[-1], 0.002 * 0.01, rel_tol=1e-9)


def _compose(*overrides: str):
    register()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))

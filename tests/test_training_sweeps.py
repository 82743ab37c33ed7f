"""Hydra sweeps of `seq-unet train`: an Optuna search, parallel runs with joblib, the SLURM launcher's config.

The sweeps run the real command on the tiny synthetic genome (prepared once
for the module by the genome, windows and extract steps).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from seq_unet.cli.main import config_dir
from seq_unet.config import register
from tests.conf_values import LINEAR_OVERRIDES
from tests.workflow_helpers import write_tiny_config

EXE = str(Path(sys.executable).parent / "seq-unet")
TINY_MODEL = ["model.depth=2", "model.pool=4", "model.base_channels=8", "model.kernel_size=5",
              "model.bottleneck_blocks=2", *LINEAR_OVERRIDES]  # slices drop the leading depth
TINY_TRAIN = ["trainer.max_epochs=2", "train.batch_size=4", "train.early_stopping_patience=0"]
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=dict(os.environ, HYDRA_FULL_ERROR="0"))


def _ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out


@pytest.fixture(scope="module")
def tiny_work(tiny_genome, tmp_path_factory) -> tuple[Path, list[str]]:
    """A folder with the tiny data set extracted, and the overrides that select it."""
    work = tmp_path_factory.mktemp("sweeps")
    conf = write_tiny_config(work, tiny_genome)
    common = ["data=tiny", f"hydra.searchpath=[file://{conf}]"]
    for step in ("genome", "windows", "extract"):
        _ok(_run(step, *common, *TINY_MODEL, cwd=work))
    return work, common


def _runs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def _overrides(run: Path) -> dict:
    """The run's overrides as values (what the sweeper chose for it)."""
    pairs = (o.split("=", 1) for o in yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()))
    return {k: yaml.safe_load(v) for k, v in pairs}


@pytest.mark.slow
def test_optuna_search_of_two_trials(tiny_work):
    work, common = tiny_work
    sweep = work / "optuna"
    # the tiny model fixes most of the U-Net's search space; the kernel size (over smaller
    # choices), dropout and optimiser settings are still searched
    small = [o for o in TINY_MODEL if not o.startswith("model.kernel_size=")]
    out = _ok(_run("train", "-m", "hparams_search=unet_optuna", "hydra.sweeper.n_trials=2",
                   f"hydra.sweep.dir={sweep}", *common, *small, *TINY_TRAIN, "model.kernel_size=choice(3,5)",
                   cwd=work))
    runs = _runs(sweep)
    assert [r.name for r in runs] == ["0", "1"]
    searched = {"model.kernel_size", "model.dropout", "train.lr", "train.weight_decay"}
    pearson = {}
    for run in runs:
        assert (run / "best.ckpt").stat().st_size > 0
        summary = json.loads((run / "train_summary.json").read_text())
        pearson[run.name] = summary["best_val_pearson"]
        chosen = _overrides(run)
        assert searched <= set(chosen) and chosen["model.depth"] == 2 and chosen["model.kernel_size"] in (3, 5)
        assert 1e-4 <= chosen["train.lr"] <= 3e-3 and 0.0 <= chosen["model.dropout"] <= 0.4
        # the trial trained with what the sweeper chose for it
        hp = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)["hyper_parameters"]
        assert hp["lr"] == chosen["train.lr"] and hp["weight_decay"] == chosen["train.weight_decay"]
        assert hp["model"]["dropout"] == chosen["model.dropout"] and hp["model"]["depth"] == 2
    assert _overrides(runs[0])["train.lr"] != _overrides(runs[1])["train.lr"]

    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = max(pearson, key=pearson.get)
    assert result["name"] == "optuna"
    assert result["best_value"] == pytest.approx(pearson[best])
    assert set(result["best_params"]) == searched
    assert result["best_params"] == {k: _overrides(sweep / best)[k] for k in searched}
    assert "Best value" in out.stdout + out.stderr


@pytest.mark.slow
def test_a_trial_that_fails_stops_the_search_or_is_skipped(tiny_work):
    work, common = tiny_work
    # depth 3 with pool 4 needs windows in multiples of 64 bp, and the tiny windows are 4000 bp
    fixed = [*common, *TINY_MODEL[1:], *TINY_TRAIN, "model.dropout=0.1", "train.lr=0.001", "train.weight_decay=0.01"]
    stop = work / "optuna_stop"
    out = _run("train", "-m", "hparams_search=unet_optuna", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={stop}",
               *fixed, "model.depth=3", cwd=work)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "seq-unet train: error: data.window_length: window length 4000 bp cannot pass through" in out.stderr
    assert "nearest usable lengths: 3968 or 4032" in out.stderr
    assert [r.name for r in _runs(stop)] == ["0"]  # the search stopped at its first trial
    assert not (stop / "optimization_results.yaml").exists()

    # hydra.sweeper.max_failure_rate=1.0: the failed trial is recorded and the search goes on
    # (with sampler seed 0 the first trial draws depth 3, the second depth 2)
    skip = work / "optuna_skip"
    _ok(_run("train", "-m", "hparams_search=unet_optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=0",
             "hydra.sweeper.max_failure_rate=1.0", f"hydra.sweep.dir={skip}", *fixed, "model.depth=choice(2,3)",
             cwd=work))
    runs = {_overrides(r)["model.depth"]: r for r in _runs(skip)}
    assert sorted(runs) == [2, 3]
    assert (runs[2] / "best.ckpt").exists() and not (runs[3] / "best.ckpt").exists()
    assert "cannot pass through" in (runs[3] / "train.log").read_text()
    result = yaml.safe_load((skip / "optimization_results.yaml").read_text())
    assert result["best_params"] == {"model.depth": 2}
    assert result["best_value"] == pytest.approx(
        json.loads((runs[2] / "train_summary.json").read_text())["best_val_pearson"])


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_folders(tiny_work):
    work, common = tiny_work
    sweep = work / "joblib"
    _ok(_run("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1",
             f"hydra.sweep.dir={sweep}", *common, *TINY_MODEL, *TINY_TRAIN, cwd=work))
    runs = _runs(sweep)
    assert [r.name for r in runs] == ["0", "1"]
    for run in runs:
        seed = _overrides(run)["seed"]
        summary = json.loads((run / "train_summary.json").read_text())
        assert f"seed={seed}" in summary["overrides"] and summary["best_checkpoint"] == str(run / "best.ckpt")
        ckpt = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)
        assert ckpt["seq_unet"]["config"]["seed"] == seed  # each run kept its own checkpoint
        launcher = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]["launcher"]
        assert launcher["_target_"].endswith("JoblibLauncher") and launcher["n_jobs"] == 2
    assert sorted(_overrides(r)["seed"] for r in runs) == [0, 1]


@pytest.mark.slow
def test_a_failed_run_of_a_multirun_is_reported_after_the_others(tiny_work):
    """submitit's local executor: each job in its own process, as on SLURM; the task travels pickled."""
    work, common = tiny_work
    sweep = work / "submitit"
    out = _run("train", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
               f"hydra.sweep.dir={sweep}", *common, *TINY_MODEL[1:], *TINY_TRAIN, "model.depth=3,2", cwd=work)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "Error executing job with overrides" in out.stderr and "'model.depth=3'" in out.stderr
    assert "seq-unet train: error: data.window_length: window length 4000 bp cannot pass through" in out.stderr
    runs = _runs(sweep)
    assert [_overrides(r)["model.depth"] for r in runs] == [3, 2]
    assert not (runs[0] / "best.ckpt").exists() and (runs[1] / "best.ckpt").exists()  # the other run went on
    assert list((sweep / ".submitit").iterdir())  # the jobs' own logs


def _hydra_config(*overrides: str):
    register()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_the_sweep_configs_compose_with_the_schema():
    cfg = _hydra_config("hparams_search=unet_optuna")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "maximize" and sweeper.sampler.seed == 1234
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert {"model.depth", "model.base_channels", "train.lr"} <= set(sweeper.params)
    assert cfg.model.depth == 4 and cfg.data.name == "sacCer3"

    cfg = _hydra_config("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=60")
    launcher = cfg.hydra.launcher
    assert launcher._target_ == SLURM_LAUNCHER
    assert launcher.partition == "gpu" and launcher.timeout_min == 60
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.cpus_per_task == 8 and launcher.mem_gb == 32 and launcher.array_parallelism == 16
    # SLURM logs inside the multirun folder
    assert launcher.submitit_folder.startswith("results/sacCer3/sweeps/")
    assert launcher.submitit_folder.endswith("/.submitit/%j")


def test_depths_of_the_search_space_fit_the_default_windows():
    from seq_unet.model.unet import geometry_from_config

    cfg = _hydra_config("hparams_search=unet_optuna")
    params = cfg.hydra.sweeper.params
    for name in ("model.depth", "model.kernel_size", "model.bottleneck_blocks"):
        assert params[name].startswith("choice(")
    choices = {name: [int(v) for v in params[name][len("choice("):-1].split(",")]
               for name in ("model.depth", "model.kernel_size", "model.bottleneck_blocks")}
    for depth in choices["model.depth"]:
        for kernel in choices["model.kernel_size"]:
            for blocks in choices["model.bottleneck_blocks"]:
                model = {**cfg.model, "pool": int(params["model.pool"]), "depth": depth, "kernel_size": kernel,
                         "bottleneck_blocks": blocks}
                assert geometry_from_config(model).accepts(cfg.data.window_length), model


def test_slurm_launcher_from_the_command_line(tmp_path):
    out = _ok(_run("train", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra",
                   "--package", "hydra.launcher", cwd=tmp_path))
    launcher = yaml.safe_load(out.stdout)
    launcher = launcher.get("hydra", {}).get("launcher", launcher)
    assert launcher["_target_"] == SLURM_LAUNCHER and launcher["partition"] == "gpu"
    assert not (tmp_path / "results").exists()  # nothing ran, nothing was submitted

"""The command line: help, clear errors without tracebacks, and the resume guard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from seq_unet.cli.main import hydra_argv
from seq_unet.cli.steps import _resumable

EXE = str(Path(sys.executable).parent / "seq-unet")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env=dict(os.environ, HYDRA_FULL_ERROR="0"))


def test_help_lists_steps(tmp_path):
    out = _run("--help", cwd=tmp_path)
    assert out.returncode == 0
    for step in ("genome", "windows", "extract", "train", "predict", "baseline", "evaluate", "browser",
                 "sweep-summary"):
        assert step in out.stdout
    out = _run("predict", "--help", cwd=tmp_path)
    assert out.returncode == 0 and "bigWig" in out.stdout


def test_unknown_test_chromosome_is_a_clear_error(tiny_genome, tmp_path):
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "tiny.yaml").write_text(
        f"name: tiny\nfasta: {tiny_genome['fasta']}\ntracks:\n  gc: {tiny_genome['tracks']['gc']}\n"
        "blacklist: null\nval_chroms: [chrC]\ntest_chroms: [chrZ]\n"
        "window_length: 4000\nstride: 2000\nmax_shift: 0\ntarget_resolution: 100\nmin_valid_fraction: 0.5\n"
    )
    common = ["data=tiny", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model.depth=2"]
    assert _run("genome", *common, cwd=tmp_path).returncode == 0
    out = _run("windows", *common, cwd=tmp_path)
    assert out.returncode == 2
    assert "test chromosomes ['chrZ'] are not in the FASTA" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "results/tiny/windows/windows.tsv").exists()
    # a window length the U-Net cannot take names the nearest usable lengths
    out = _run("windows", *common, "data.test_chroms=[chrB]", "data.window_length=4100", "data.stride=100",
               cwd=tmp_path)
    assert out.returncode == 2 and "nearest usable lengths: 4096 or 4112" in out.stderr


def test_resume_only_from_the_same_run(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    last = ckpt_dir / "last.ckpt"
    torch.save({"hyper_parameters": {"tracks": ["a"], "dataset_md5": "x"}}, last)
    assert _resumable(last, {"tracks": ["a"], "dataset_md5": "x"}) == str(last)
    assert _resumable(last, {"tracks": ["a"], "dataset_md5": "y"}) is None
    assert not ckpt_dir.exists() and (tmp_path / "checkpoints.stale" / "last.ckpt").exists()
    assert _resumable(last, {"tracks": ["a"]}) is None


def test_sweep_summary_of_a_missing_folder_is_a_clear_error(tmp_path):
    out = _run("sweep-summary", f"sweep.dir={tmp_path / 'nope'}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"sweep folder {tmp_path / 'nope'} does not exist" in out.stderr


def test_job_name_joins_the_overrides_not_the_flags():
    assert hydra_argv("train", ["-m", "seed=0,1", "model.depth=4"]) == [
        "seq-unet-train", "-m", "hydra.job.name=train", "seed=0,1", "model.depth=4"]
    assert hydra_argv("predict", ["--cfg", "job"]) == ["seq-unet-predict", "--cfg", "job", "hydra.job.name=predict"]
    assert hydra_argv("train", ["seed=1", "-m"]) == ["seq-unet-train", "hydra.job.name=train", "seed=1", "-m"]

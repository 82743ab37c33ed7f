"""The command line: help, clear errors without tracebacks, and the resume guard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from seq_unet.cli.main import hydra_argv
from seq_unet.training import resume_point
from tests.conf_values import LINEAR_OVERRIDES

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
    common = ["data=tiny", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model.depth=2", "model.pool=4",
              *LINEAR_OVERRIDES]
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
    assert resume_point(last, {"tracks": ["a"], "dataset_md5": "x"}) == (str(last), -1)  # no epoch recorded
    assert resume_point(last, {"tracks": ["a"], "dataset_md5": "y"}) is None
    assert not ckpt_dir.exists() and (tmp_path / "checkpoints.stale" / "last.ckpt").exists()
    assert resume_point(last, {"tracks": ["a"]}) is None
    # a checkpoint written before a setting existed continues a run at that setting's default
    ckpt_dir.mkdir()
    torch.save({"hyper_parameters": {"tracks": ["a"]}}, last)
    assert resume_point(last, {"tracks": ["a"], "min_lr_ratio": 0.01}) == (str(last), -1)
    assert resume_point(last, {"tracks": ["a"], "min_lr_ratio": 0.1}) is None


def test_sweep_summary_of_a_missing_folder_is_a_clear_error(tmp_path):
    out = _run("sweep-summary", f"sweep.dir={tmp_path / 'nope'}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"sweep folder {tmp_path / 'nope'} does not exist" in out.stderr


def test_job_name_joins_the_overrides_not_the_flags():
    assert hydra_argv("train", ["-m", "seed=0,1", "model.depth=4"]) == [
        "seq-unet-train", "-m", "hydra.job.name=train", "seed=0,1", "model.depth=4"]
    assert hydra_argv("predict", ["--cfg", "job"]) == ["seq-unet-predict", "--cfg", "job", "hydra.job.name=predict"]
    assert hydra_argv("train", ["seed=1", "-m"]) == ["seq-unet-train", "hydra.job.name=train", "seed=1", "-m"]


def test_predict_a_new_genome_needs_only_a_fasta_and_a_checkpoint(tmp_path):
    """No tracks, no data config, no prepared genome: a gzip FASTA and a checkpoint give bigWigs."""
    import gzip

    import numpy as np
    import pybigtools
    import pytorch_lightning as pl

    from seq_unet.lit import SeqUNetModule
    from tests.conf_values import linear_model, train_options

    model = linear_model(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=2)
    module = SeqUNetModule(tracks=["rt"], window_length=2048, target_resolution=100, target_mean=[1.5],
                           target_std=[0.3], model=model, **train_options())
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": pl.__version__}, ckpt)
    rng = np.random.default_rng(2)
    sizes = {"scaffold_9": 5000, "contig_1": 777}  # names the model never saw, not sorted
    new = tmp_path / "new" / "other_species.fa.gz"
    new.parent.mkdir()
    with gzip.open(new, "wt") as fh:
        for name, n in sizes.items():
            fh.write(f">{name} some description\n{''.join(rng.choice(list('ACGT'), n))}\n")
    work = tmp_path / "empty"
    work.mkdir()
    out = _run("predict", f"predict.ckpt={ckpt}", f"predict.fasta={new}", "predict.out_dir=pred",
               "predict.device=cpu", cwd=work)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "bp/s" in out.stdout + out.stderr and "s left" in out.stdout + out.stderr  # progress
    bw = pybigtools.open(str(work / "pred" / "rt.bw"))
    assert list(bw.chroms().items()) == list(sizes.items())
    for c, n in sizes.items():
        assert np.isfinite(bw.values(c, 0, n, fillna=None)).all(), c
    bw.close()
    assert (work / "pred" / "genome" / "genome.fa.fai").exists()  # the prepared, indexed copy

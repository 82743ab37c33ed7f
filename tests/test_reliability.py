"""Reliability: killed steps leave nothing half-written, training resumes, runs are
reproducible, and outputs that cannot be written are clear errors."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from seq_unet.errors import InputError
from tests.conf_values import LINEAR_OVERRIDES, linear_model, train_options
from tests.workflow_helpers import TINY_OVERRIDES, failure_logs, snakemake_cmd, write_tiny_config
from tests.workflow_helpers import run_snakemake as _snakemake

EXE = str(Path(sys.executable).parent / "seq-unet")
MODEL = linear_model(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=2)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) before the awaited moment")
        if time.time() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def _tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp")] if folder.exists() else []


@pytest.mark.slow
def test_training_killed_then_rerun_resumes_with_the_same_counters(tiny_genome, tmp_path):
    conf = write_tiny_config(tmp_path, tiny_genome)
    epochs = 4
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("trainer.max_epochs")] + [
        f"trainer.max_epochs={epochs}"]
    work = tmp_path / "work"
    work.mkdir()
    res = work / "results" / "tiny"
    last = res / "train" / "checkpoints" / "last.ckpt"
    cmd, env = snakemake_cmd(work, conf, overrides=overrides, mc_samples=0)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    _wait_for(last.exists, proc)  # the first epoch is done and checkpointed
    _kill_group(proc)  # the scheduler's SIGKILL: no chance to clean up
    assert not (res / "train" / "best.ckpt").exists() and not (res / "train" / "train_summary.json").exists()
    saved = torch.load(last, map_location="cpu", weights_only=True)  # complete, not half-written
    stopped_epoch, stopped_step = saved["epoch"], saved["global_step"]
    assert stopped_epoch < epochs - 1 and stopped_step > 0

    # the documented recovery: release Snakemake's lock, run the same command again
    assert _snakemake(work, conf, "--unlock", overrides=overrides, mc_samples=0).returncode == 0
    run = _snakemake(work, conf, overrides=overrides, mc_samples=0)
    if run.returncode != 0:
        pytest.fail(failure_logs(run, work))
    log = (res / "logs" / "train.log").read_text()
    assert f"resuming from {last}" in log
    summary = pd.read_json(res / "train" / "train_summary.json", typ="series")
    steps_per_epoch = stopped_step // (stopped_epoch + 1)
    assert summary["epochs"] == epochs and summary["global_step"] == epochs * steps_per_epoch
    # one metrics table for the whole run: each epoch validated once, training steps continue
    metrics = pd.read_csv(res / "train" / "logs" / "metrics.csv")
    val = metrics.dropna(subset=["val/pearson"])
    assert val.epoch.tolist() == list(range(epochs))
    assert val.step.tolist() == [(e + 1) * steps_per_epoch - 1 for e in range(epochs)]
    assert not _tmp_files(res)
    assert (res / "eval" / "metrics.tsv").exists()


@pytest.mark.slow
def test_same_seed_and_config_give_identical_metrics_tables(tiny_genome, tmp_path):
    conf = write_tiny_config(tmp_path, tiny_genome)
    tables = []
    for name in ("run1", "run2"):
        work = tmp_path / name
        work.mkdir()
        run = _snakemake(work, conf, "--until", "evaluate", mc_samples=0)
        if run.returncode != 0:
            pytest.fail(failure_logs(run, work))
        res = work / "results" / "tiny"
        tables.append({f: (res / f).read_text() for f in ("train/logs/metrics.csv", "eval/metrics.tsv")})
    assert tables[0] == tables[1]
    assert len(tables[0]["eval/metrics.tsv"].splitlines()) > 10


def _checkpoint(tmp_path: Path) -> Path:
    from seq_unet.lit import SeqUNetModule

    torch.manual_seed(0)
    module = SeqUNetModule(tracks=["a", "b"], window_length=2048, target_resolution=100, target_mean=[1.0, 2.0],
                           target_std=[0.5, 0.25], model=MODEL, **train_options())
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def _big_fasta(tmp_path: Path, n: int = 600_000) -> Path:
    import numpy as np

    from seq_unet.io.fasta import prepare_fasta
    from tests.conftest import random_sequence, write_fasta

    rng = np.random.default_rng(1)
    src = write_fasta(tmp_path / "g.fa", {"c1": random_sequence(rng, n), "c2": random_sequence(rng, n // 3)})
    prepare_fasta(src, tmp_path / "genome.fa")
    return tmp_path / "genome.fa"


def test_predict_killed_mid_write_leaves_the_final_bigwig_absent_or_intact(tmp_path):
    ckpt, fasta = _checkpoint(tmp_path), _big_fasta(tmp_path)
    out = tmp_path / "pred"
    cmd = [EXE, "predict", f"predict.ckpt={ckpt}", f"predict.fasta={fasta}", f"predict.out_dir={out}",
           "predict.device=cpu", "predict.reverse_complement=false"]

    def writing() -> bool:
        return bool(_tmp_files(out))

    # killed during the first run: no bigWig under its final name
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    _wait_for(writing, proc)
    _kill_group(proc)
    assert not (out / "a.bw").exists() and not (out / "b.bw").exists()
    # the rerun finishes and its files are whole
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    before = {t: _md5(out / f"{t}.bw") for t in "ab"}
    import pybigtools

    for t in "ab":
        bw = pybigtools.open(str(out / f"{t}.bw"))
        assert dict(bw.chroms()) == {"c1": 600_000, "c2": 200_000}
        bw.close()
    # killed while overwriting: the previous files stay intact
    for leftover in _tmp_files(out):
        leftover.unlink()
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    _wait_for(writing, proc)
    _kill_group(proc)
    assert {t: _md5(out / f"{t}.bw") for t in "ab"} == before


def test_not_enough_disk_space_is_found_before_writing(tiny_prepared, tmp_path, monkeypatch):
    """libBigWig retries a failed write forever and memory maps crash on a full disk, so free space is checked."""
    import seq_unet.io.atomic as atomic
    from seq_unet.predict.genome import predict_genome

    ckpt = _checkpoint(tmp_path)
    monkeypatch.setattr(atomic, "free_bytes", lambda folder: 200_000)
    out = tmp_path / "pred"
    with pytest.raises(InputError, match=r"not enough free disk space to write .*a\.bw: about [\d.]+ MB needed, "
                                         r"0\.2 MB free in"):
        predict_genome(ckpt, tiny_prepared, out, device="cpu", reverse_complement=False)
    assert not (out / "a.bw").exists() and not _tmp_files(out) and not list(out.iterdir())


def test_checkpoint_writer_is_atomic_and_checks_space(tmp_path, monkeypatch):
    import seq_unet.io.atomic as atomic
    from seq_unet.checkpoint import atomic_checkpoint_io

    io = atomic_checkpoint_io()
    state = {"state_dict": {"w": torch.zeros(1000)}, "epoch": 3}
    io.save_checkpoint(state, tmp_path / "ck" / "last.ckpt")
    assert torch.load(tmp_path / "ck" / "last.ckpt", weights_only=True)["epoch"] == 3
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["last.ckpt"]
    monkeypatch.setattr(atomic, "free_bytes", lambda folder: 1000)
    with pytest.raises(InputError, match="not enough free disk space"):
        io.save_checkpoint({**state, "epoch": 4}, tmp_path / "ck" / "last.ckpt")
    assert torch.load(tmp_path / "ck" / "last.ckpt", weights_only=True)["epoch"] == 3


def _limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        os.setsid()
    return apply


def test_a_write_that_fails_midway_is_a_clear_error_and_leaves_nothing(tiny_genome, tmp_path):
    """Files may not grow past 1 kB (RLIMIT_FSIZE: the write fails with EFBIG, as a full disk fails with ENOSPC)."""
    conf = write_tiny_config(tmp_path, tiny_genome)
    common = ["data=tiny", f"hydra.searchpath=[file://{conf}]", "model.depth=2", "model.pool=4",
              *LINEAR_OVERRIDES]
    assert subprocess.run([EXE, "genome", *common], cwd=tmp_path, capture_output=True).returncode == 0
    # Hydra writes its record of the run (.hydra/config.yaml ...) first
    out = subprocess.run([EXE, "windows", *common], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         preexec_fn=_limit_file_size(1024))
    record = tmp_path / "results/tiny/windows/.hydra/config.yaml"
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert f"seq-unet windows: error: cannot write {record}: File too large; nothing was left" in out.stderr
    assert not record.exists()
    # without Hydra's own files, the step's own table is the first to fail
    out = subprocess.run([EXE, "windows", *common, "hydra.output_subdir=null", "hydra/job_logging=stdout"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(1024))
    windows = tmp_path / "results/tiny/windows/windows.tsv"
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert "cannot write results/tiny/windows/windows.tsv: File too large" in out.stderr
    assert not windows.exists() and not _tmp_files(windows.parent)


def test_an_output_folder_that_cannot_be_created_is_a_clear_error(tiny_prepared, tmp_path):
    ckpt = _checkpoint(tmp_path)
    (tmp_path / "afile").write_text("x")
    out = subprocess.run([EXE, "predict", f"predict.ckpt={ckpt}", f"predict.fasta={tiny_prepared}",
                          f"predict.out_dir={tmp_path / 'afile' / 'pred'}", "predict.device=cpu"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"cannot create output folder {tmp_path / 'afile' / 'pred'}" in out.stderr


def _small_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_really_full_disk(tiny_genome, tiny_prepared, tmp_path):
    """On a 1 MB file system: a table that does not fit and bigWigs that would not fit are clear errors."""
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk, "1m"):
        pytest.skip("needs root and permission to mount a small tmpfs (a really full disk)")
    try:
        ckpt = _checkpoint(tmp_path)
        out = subprocess.run([EXE, "predict", f"predict.ckpt={ckpt}", f"predict.fasta={tiny_prepared}",
                              f"predict.out_dir={disk / 'pred'}", "predict.device=cpu", "predict.precision=0",
                              "predict.smooth=0"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert out.returncode == 2, out.stderr[-3000:]
        assert "not enough free disk space to write" in out.stderr and "Traceback" not in out.stderr
        assert not list((disk / "pred").glob("*.bw"))
        # fill the disk, then write a table: ENOSPC from the file system itself
        with open(disk / "filler", "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError:
                pass
        conf = write_tiny_config(tmp_path, tiny_genome)
        common = ["data=tiny", f"hydra.searchpath=[file://{conf}]", "model.depth=2", "model.pool=4",
              *LINEAR_OVERRIDES]
        assert subprocess.run([EXE, "genome", *common], cwd=tmp_path, capture_output=True).returncode == 0
        windows = disk / "windows.tsv"
        out = subprocess.run([EXE, "windows", *common, f"paths.windows={windows}"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert f"cannot write {windows}: No space left on device" in out.stderr
        assert not windows.exists() and not _tmp_files(disk)
        # Hydra's own record of the run (.hydra/config.yaml) is written before any step starts
        run_dir = disk / "run"
        out = subprocess.run([EXE, "windows", *common, f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
        assert out.stderr.strip() == (f"seq-unet windows: error: cannot write {run_dir}/.hydra/config.yaml: "
                                      "No space left on device; nothing was left under that name")
        assert not (run_dir / ".hydra" / "config.yaml").exists()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_resumed_metrics_keep_the_completed_epochs_only(tmp_path):
    """Rows of the epoch cut short are dropped (it is trained again), a half-written last line too."""
    from seq_unet.training import keep_metrics_before, merge_resumed_metrics

    logs = tmp_path / "logs"
    logs.mkdir()
    csv = logs / "metrics.csv"
    csv.write_text("epoch,step,train/loss,val/pearson\n0,4,0.9,\n0,4,,0.1\n1,9,0.8,\n1,9,,0.2\n2,12,0.7,\n2,13,0.6")
    keep_metrics_before(1, csv)  # the checkpoint resumed from completed epoch 1
    csv.write_text("epoch,step,train/loss,val/pearson\n2,14,0.5,\n2,14,,0.3\n")  # the resumed run's own log
    merge_resumed_metrics(csv)
    rows = pd.read_csv(csv)
    assert rows.epoch.tolist() == [0, 0, 1, 1, 2, 2] and rows.step.tolist() == [4, 4, 9, 9, 14, 14]
    assert not (logs / "metrics.before_resume.csv").exists()


@pytest.mark.slow
def test_last_checkpoint_is_the_latest_epoch_even_without_improvement(tiny_genome, tmp_path):
    """With a learning rate of 0 the validation score never improves after epoch 0; last.ckpt still follows."""
    conf = write_tiny_config(tmp_path, tiny_genome)
    common = ["data=tiny", f"hydra.searchpath=[file://{conf}]", *[o.strip("'") for o in TINY_OVERRIDES]]
    for step in ("genome", "windows", "extract"):
        assert subprocess.run([EXE, step, *common], cwd=tmp_path, capture_output=True).returncode == 0, step
    out = subprocess.run([EXE, "train", *common, "trainer.max_epochs=3", "train.lr=0", "train.num_workers=0"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpts = tmp_path / "results/tiny/train/checkpoints"
    assert torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 2
    assert [p.name for p in ckpts.glob("best-*.ckpt")] == ["best-epoch000.ckpt"]

"""Distributed training (Lightning DDP) and multi-process prediction, with 2 CPU processes over gloo.

DDP training must use every window once per epoch, write files from process 0
only and log the validation metrics of the whole validation split; a
prediction in 2 processes must write the bigWigs of 1 process, bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pybigtools
import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist

from seq_unet.checkpoint import load_module, read_checkpoint
from seq_unet.cli.relaunch import job_argv
from seq_unet.data.datamodule import EpochOrder, RankBatches
from seq_unet.data.store import WindowDataset
from seq_unet.errors import InputError
from seq_unet.io.genome import Genome
from seq_unet.lit import SeqUNetModule
from seq_unet.model.unet import geometry_from_config
from seq_unet.predict.genome import predict_genome
from seq_unet.training import resume_point
from tests.conf_values import LINEAR_OVERRIDES, linear_model, train_options
from tests.workflow_helpers import write_tiny_config

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

EXE = str(Path(sys.executable).parent / "seq-unet")
MODEL = [*LINEAR_OVERRIDES, "model.depth=2", "model.pool=4", "model.base_channels=8", "model.kernel_size=5",
         "model.bottleneck_blocks=2"]
DDP = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "train.batch_size=4",
       "train.early_stopping_patience=0", "train.num_workers=0"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # one thread per process: the processes of a run share the machine's cores
    env = dict(os.environ, HYDRA_FULL_ERROR="1", OMP_NUM_THREADS="1")
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=400, env=env)


@pytest.fixture(scope="module")
def tiny_data(tiny_genome, tmp_path_factory) -> tuple[Path, list[str]]:
    """A work folder with the tiny genome's extracted dataset, and the overrides that name it."""
    work = tmp_path_factory.mktemp("ddp")
    conf = write_tiny_config(work, tiny_genome)
    common = ["data=tiny", f"hydra.searchpath=[file://{conf}]", *MODEL]
    for step in ("genome", "windows", "extract"):
        out = _run(step, *common, cwd=work)
        assert out.returncode == 0, out.stderr[-3000:]
    return work, common


def _val_metrics(ckpt: Path, dataset: Path) -> tuple[float, float]:
    """Validation Pearson (mean over tracks) and loss of a checkpoint, in this process, without Lightning."""
    module = load_module(ckpt)
    manifest = json.loads((dataset / "manifest.json").read_text())
    tracks = manifest["tracks"]
    ds = WindowDataset(dataset / "val", [manifest["target_mean"][t] for t in tracks],
                       [manifest["target_std"][t] for t in tracks])
    preds, targets, masks = [], [], []
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            batch = {k: item[k][None] for k in ("x", "y", "mask")}
            preds.append(module.pool(module(batch["x"])[..., module.out_from : module.out_to])[0].double())
            y, m = module._targets(batch)
            targets.append(y[0].double())
            masks.append(m[0])
    pred, y, mask = torch.cat(preds, -1).numpy(), torch.cat(targets, -1).numpy(), torch.cat(masks, -1).numpy()
    pearson = np.mean([np.corrcoef(pred[t][mask[t]], y[t][mask[t]])[0, 1] for t in range(len(tracks))])
    loss = float((((pred - y) ** 2) * mask).sum() / mask.sum())
    return float(pearson), loss


@pytest.mark.slow
def test_ddp_training_logs_the_metrics_of_the_whole_validation_split(tiny_data):
    work, common = tiny_data
    out = _run("train", *common, *DDP, "trainer.max_epochs=2", cwd=work)
    assert out.returncode == 0, out.stderr[-5000:]
    run = work / "results" / "tiny" / "train"
    model = load_module(run / "best.ckpt")
    assert model.tracks == ["gc", "noisy"]
    summary = json.loads((run / "train_summary.json").read_text())
    manifest = json.loads((work / "results/tiny/dataset/manifest.json").read_text())
    n_train = manifest["splits"]["train"]["windows"]
    # each process takes its share of the windows, every window once: 20 windows, 2 processes,
    # 4 a batch -> 3 steps per epoch (Lightning's DistributedSampler would give the same count but
    # repeat windows whenever the windows do not divide evenly)
    assert n_train == 20 and summary["epochs"] == 2
    assert summary["global_step"] == 2 * -(-n_train // (2 * 4))
    # process 0 wrote everything; the other process only its Hydra log
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [".hydra", "best.ckpt", "checkpoints", "logs", "train.log", "train_ddp_process_1.log", "train_summary.json"])
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1

    # the logged validation metrics are those of one process on the whole validation split
    metrics = pd.read_csv(run / "logs" / "metrics.csv")
    val = metrics.dropna(subset=["val/pearson"]).set_index("epoch")
    assert list(val.index) == [0, 1]
    for ckpt in (run / "best.ckpt", run / "checkpoints" / "last.ckpt"):
        epoch = int(read_checkpoint(ckpt)["epoch"])
        pearson, loss = _val_metrics(ckpt, work / "results/tiny/dataset")
        assert val.loc[epoch, "val/pearson"] == pytest.approx(pearson, abs=2e-5), ckpt
        assert val.loc[epoch, "val/loss"] == pytest.approx(loss, rel=1e-5), ckpt
    # the best checkpoint is chosen on the genome-wide validation score (train.select_on=genome), which
    # every process computes alike
    assert summary["best_val_pearson"] == pytest.approx(val["val/genome_pearson"].max(), abs=1e-7)
    assert int(read_checkpoint(run / "best.ckpt")["epoch"]) == int(val["val/genome_pearson"].idxmax())


@pytest.mark.slow
def test_ddp_in_a_multirun_trains_each_job_in_its_own_folder(tiny_data):
    """Under `-m` every job's processes run that job alone; the next job starts its own processes."""
    work, common = tiny_data
    sweep = work / "results" / "tiny" / "ddp_sweep"
    out = _run("train", "-m", *common, *DDP, "trainer.max_epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep}",
               cwd=work)
    assert out.returncode == 0, out.stderr[-5000:]
    for job, seed in (("0", 0), ("1", 1)):
        run = sweep / job
        assert load_module(run / "best.ckpt").tracks == ["gc", "noisy"]
        assert json.loads((run / "train_summary.json").read_text())["global_step"] == 3
        assert (run / "train_ddp_process_1.log").exists()  # process 1 of this job ran with this job's folder
        assert read_checkpoint(run / "best.ckpt")["seq_unet"]["config"]["seed"] == seed
    assert not (work / "results" / "tiny" / "train_ddp_process_1").exists()


@pytest.fixture
def one_thread(monkeypatch):
    """One CPU thread here and in the processes started: float sums on the CPU can differ in the last
    bit with the number of threads, and the outputs are compared bit for bit."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _module(padding: str, dropout: float) -> SeqUNetModule:
    torch.manual_seed(0)
    model = linear_model(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=2, padding=padding,
                       dropout=dropout)
    window = geometry_from_config(model).nearest_valid_lengths(2048)[1]
    return SeqUNetModule(tracks=["a", "b"], window_length=window, target_resolution=100, target_mean=[1.0, 2.0],
                         target_std=[0.5, 0.25], model=model, **train_options())


def _save(module: SeqUNetModule, path: Path) -> Path:
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": pl.__version__}, path)
    return path


def _assert_same_bigwigs(one: Path, two: Path, names: list[str], sizes: dict[str, int]) -> None:
    for name in names:
        a, b = pybigtools.open(str(one / f"{name}.bw")), pybigtools.open(str(two / f"{name}.bw"))
        try:
            for chrom, n in sizes.items():
                va = np.asarray(a.values(chrom, 0, n, fillna=None))
                vb = np.asarray(b.values(chrom, 0, n, fillna=None))
                np.testing.assert_array_equal(va, vb, err_msg=f"{name} {chrom}")
        finally:
            a.close()
            b.close()
        assert (one / f"{name}.bw").read_bytes() == (two / f"{name}.bw").read_bytes(), name


def test_two_process_prediction_from_the_command_line_equals_one_process(tiny_prepared, tmp_path, one_thread):
    ckpt = _save(_module("valid", dropout=0.2), tmp_path / "m.ckpt")
    predict_genome(ckpt, tiny_prepared, tmp_path / "one", device="cpu", batch_size=3, mask_unknown=True,
                   precision=1e-4)
    two = _run("predict", f"predict.ckpt={ckpt}", f"predict.fasta={tiny_prepared}", "predict.device=cpu",
               "predict.batch_size=3", "predict.mask_unknown=true", "predict.precision=0.0001", "predict.devices=2",
               "predict.out_dir=two", cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    logged = two.stdout + two.stderr
    assert "on 2 processes (cpu)" in logged and "83000 / 83000 bp" in logged  # progress, from process 0
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["a.bw", "b.bw"]
    _assert_same_bigwigs(tmp_path / "one", tmp_path / "two", ["a", "b"], Genome(tiny_prepared).sizes)


def test_two_process_monte_carlo_prediction_equals_one_process(tiny_prepared, tmp_path, one_thread):
    """The dropout masks of a batch depend on the seed, the chromosome and the batch, not on the process."""
    ckpt = _save(_module("same", dropout=0.2), tmp_path / "m.ckpt")
    kw = dict(device="cpu", batch_size=2, mc_samples=3, precision=1e-4, seed=5)
    one = predict_genome(ckpt, tiny_prepared, tmp_path / "one", **kw)
    two = predict_genome(ckpt, tiny_prepared, tmp_path / "two", devices=2, **kw)
    assert {n: p.name for n, p in one.items()} == {n: p.name for n, p in two.items()}
    assert set(one) == {"a", "b", "a.std", "b.std"}
    _assert_same_bigwigs(tmp_path / "one", tmp_path / "two", list(one), Genome(tiny_prepared).sizes)
    # the masks really are drawn per seed: another seed gives other values
    other = predict_genome(ckpt, tiny_prepared, tmp_path / "other", **{**kw, "seed": 6})
    assert other["a.std"].read_bytes() != one["a.std"].read_bytes()


def test_predict_devices_is_checked(tiny_prepared, tmp_path):
    ckpt = _save(_module("same", dropout=0.0), tmp_path / "m.ckpt")
    with pytest.raises(InputError, match="at least 1"):
        predict_genome(ckpt, tiny_prepared, tmp_path / "x", device="cpu", devices=0)
    with pytest.raises(InputError, match="names one device"):
        predict_genome(ckpt, tiny_prepared, tmp_path / "x", device="cuda:1", devices=2)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("batch_size", [1, 2, 4, 8])
def test_rank_batches_use_every_window_once_with_equal_step_counts(world_size, batch_size):
    for n in list(range(world_size, 40)) + [97, 1000]:
        order = EpochOrder(n, shuffle=True, seed=3)
        for epoch in (0, 1):
            order.set_epoch(epoch)
            ranks = [RankBatches(order, batch_size, r, world_size) for r in range(world_size)]
            batches = [list(r) for r in ranks]
            assert len({len(b) for b in batches} | {len(r) for r in ranks}) == 1, (n, batches)
            seen = sorted(i for b in batches for batch in b for i in batch)
            assert seen == list(range(n)), n
            sizes = [len(batch) for b in batches for batch in b]
            assert min(sizes) >= 1
            assert max(sizes) <= (batch_size if batch_size > 1 or n % world_size == 0 else 2), (n, sizes)
            # as few steps as batches of batch_size allow
            assert len(ranks[0]) == max(-(-n // (world_size * batch_size)), 1) or batch_size == 1
    first = [i for b in RankBatches(EpochOrder(50, True, 3), 4, 0, 2) for i in b]
    order = EpochOrder(50, True, 3)
    order.set_epoch(1)
    assert first != [i for b in RankBatches(order, 4, 0, 2) for i in b]  # reshuffled every epoch
    assert [i for b in RankBatches(EpochOrder(7, False), 4, 0, 2) for i in b] == [0, 1, 2, 3]
    with pytest.raises(InputError, match="3 windows cannot be shared among 4 processes"):
        RankBatches(EpochOrder(3, False), 4, 0, 4)


def test_only_process_zero_moves_a_stale_checkpoint(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    last = ckpt_dir / "last.ckpt"
    torch.save({"hyper_parameters": {"tracks": ["a"], "dataset_md5": "x"}}, last)
    assert resume_point(last, {"tracks": ["a"], "dataset_md5": "x"}, move_stale=False).path == str(last)
    assert resume_point(last, {"tracks": ["a"], "dataset_md5": "y"}, move_stale=False) is None
    assert last.exists()  # left for process 0 to move
    assert resume_point(last, {"tracks": ["a"], "dataset_md5": "y"}) is None
    assert not last.exists() and (tmp_path / "checkpoints.stale" / "last.ckpt").exists()


def test_the_relaunch_command_is_the_job_alone():
    argv = job_argv("/venv/bin/seq-unet", "train", ["-m", "-cd", "/conf", "seed=0,1", "trainer=ddp"],
                    ["hydra.job.name=train", "hydra.mode=MULTIRUN", "hydra.searchpath=[file:///x]"],
                    ["seed=1", "trainer=ddp"])
    assert argv == ["/venv/bin/seq-unet", "train", "-cd", "/conf", "hydra.searchpath=[file:///x]", "seed=1",
                    "trainer=ddp", "hydra.mode=RUN"]


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_two_gpu_prediction_equals_one_gpu(tiny_prepared, tmp_path):
    ckpt = _save(_module("same", dropout=0.2), tmp_path / "m.ckpt")
    kw = dict(device="cuda", batch_size=2, mc_samples=2, precision=1e-4)
    one = predict_genome(ckpt, tiny_prepared, tmp_path / "one", **kw)
    predict_genome(ckpt, tiny_prepared, tmp_path / "two", devices=2, **kw)
    _assert_same_bigwigs(tmp_path / "one", tmp_path / "two", list(one), Genome(tiny_prepared).sizes)


def test_two_process_prediction_of_many_small_contigs_equals_one_process(tiny_genome, tmp_path, one_thread):
    """The batches of short contigs are shared among the processes like a chromosome's batches."""
    from seq_unet.io.fasta import prepare_fasta
    from tests.conftest import random_sequence, write_fasta

    rng = np.random.default_rng(1)
    seqs = {"chrA": tiny_genome["seqs"]["chrA"][:9000]}
    seqs.update({f"un{i}": random_sequence(rng, int(n)) for i, n in enumerate([1, 100, *rng.integers(200, 1500, 9)])})
    seqs["long"] = random_sequence(rng, 5000)
    seqs["N"] = "N" * 50
    write_fasta(tmp_path / "raw.fa", seqs)
    fasta = tmp_path / "genome.fa"
    prepare_fasta(tmp_path / "raw.fa", fasta)
    ckpt = _save(_module("valid", dropout=0.2), tmp_path / "m.ckpt")
    kw = dict(device="cpu", batch_size=3, mc_samples=2, precision=1e-4, seed=5, mask_unknown=True)
    one = predict_genome(ckpt, fasta, tmp_path / "one", **kw)
    predict_genome(ckpt, fasta, tmp_path / "two", devices=2, **kw)
    _assert_same_bigwigs(tmp_path / "one", tmp_path / "two", list(one), Genome(fasta).sizes)


def test_two_process_prediction_in_segments_equals_one_process(tiny_prepared, tmp_path, one_thread, monkeypatch):
    """Long chromosomes stitched segment by segment (one batch each): the processes share each segment's
    batches, process 0 carries the cross-fades over, and the files are those of one process."""
    from seq_unet.predict import chromosomes

    monkeypatch.setattr(chromosomes, "SEGMENT", 3000)  # travels to the spawned processes in the job
    ckpt = _save(_module("same", dropout=0.2), tmp_path / "m.ckpt")
    kw = dict(device="cpu", batch_size=2, mc_samples=2, precision=1e-4, seed=5, mask_unknown=True)
    one = predict_genome(ckpt, tiny_prepared, tmp_path / "one", **kw)
    predict_genome(ckpt, tiny_prepared, tmp_path / "two", devices=2, **kw)
    _assert_same_bigwigs(tmp_path / "one", tmp_path / "two", list(one), Genome(tiny_prepared).sizes)

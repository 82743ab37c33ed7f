"""Planted origins: a synthetic genome whose timing is made by the kinetics the kinetic head assumes.

A 15-bp origin motif is planted every 3-6 kb in random sequence, in two
variants of known efficiency (initiation rate 1.0 or 0.35 per minute), in
either orientation. The timing track is simulated from those sites with
:class:`~seq_unet.model.kinetics.ReplicationTime` (the same kinetics) and
written as a 100-bp bigWig with a little noise. The workflow's own steps
(`seq-unet genome/windows/extract/train/predict`) then train the kinetic head
and, the same way, the linear head. On the held-out chromosomes the kinetic
model must put at least 80% of the planted origins within 1 kb of one of its
top initiation peaks and reach a Pearson of at least 0.9, well above the
linear head. This fails if the kinetic layer, the rate head, the loss masks at
window edges, the stitching or the initiation track break.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pybigtools
import pytest
import torch

from seq_unet.model.kinetics import KineticGeometry, ReplicationTime
from tests.conftest import write_binned_bigwig, write_fasta

RES = 100  # track and kinetic bin size
REACH, SPEED = 4000, 2000.0
STRONG, WEAK = "TTTATGTTTAGTTTA", "TTTATGTCTAGTCTA"
RATES = {STRONG: 1.0, WEAK: 0.35}  # per minute
N_CHROMS, LENGTH = 23, 60_000
VAL, TEST = ["c22"], ["c20", "c21"]
COMMON = [
    "data=planted", "model.depth=2", "model.pool=4", "model.base_channels=8", "model.kernel_size=9",
    "model.bottleneck_blocks=0", "model.dropout=0.1", "train.batch_size=8", "train.lr=0.002",
    "train.early_stopping_patience=0", "trainer.max_epochs=28", "predict.batch_size=16",
]
KINETIC = ["model.head=kinetic", f"model.kinetic.bin_size={RES}", f"model.kinetic.reach={REACH}",
           f"model.kinetic.fork_speed={SPEED}"]

_COMPLEMENT = str.maketrans("ACGT", "TGCA")


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    return make_planted(tmp_path_factory.mktemp("planted"))


def make_planted(d: Path) -> dict:
    """Write the planted genome, its timing track and a data config under ``d``."""
    rng = np.random.default_rng(2026)
    geometry = KineticGeometry(RES, REACH, SPEED)
    seqs, values, sites = {}, {}, {}
    for i in range(N_CHROMS):
        name = f"c{i}"
        bases = np.array(list("ACGT"))[rng.integers(0, 4, LENGTH)]
        rates = np.zeros(LENGTH // RES)
        pos, here = 2000, []
        while pos < LENGTH - 2000:
            motif = STRONG if rng.random() < 0.5 else WEAK
            site = motif if rng.random() < 0.5 else motif.translate(_COMPLEMENT)[::-1]
            bases[pos : pos + len(site)] = list(site)
            centre = pos + len(site) // 2
            rates[centre // RES] += RATES[motif]
            here.append(centre)
            pos += int(rng.integers(3000, 6000))
        with torch.no_grad():
            t = ReplicationTime(geometry)(torch.tensor(rates)[None, None])[0, 0].numpy()
        values[name] = 2.0 - t / 5.0 + rng.normal(0, 0.005, len(t))  # higher = earlier, like relative copy number
        seqs[name] = "".join(bases)
        sites[name] = np.array(here)
    sizes = {c: LENGTH for c in seqs}
    fasta = write_fasta(d / "planted.fa", seqs)
    track = write_binned_bigwig(d / "timing.bw", sizes, values, RES)
    conf = d / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "planted.yaml").write_text(
        f"name: planted\nfasta: {fasta}\ntracks:\n  timing: {track}\nval_chroms: {VAL}\ntest_chroms: {TEST}\n"
        "window_length: 16000\nstride: 8000\nmax_shift: 4000\ntarget_resolution: 100\nmin_valid_fraction: 0.5\n")
    return {"dir": d, "conf": conf.parent, "sites": sites, "values": values, "sizes": sizes}


def _seq_unet(step: str, planted: dict, *overrides: str, out: str) -> None:
    exe = Path(sys.executable).parent / "seq-unet"
    args = [str(exe), step, f"hydra.searchpath=[file://{planted['conf']}]", f"paths.results={out}", *COMMON,
            *overrides]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    run = subprocess.run(args, cwd=planted["dir"], capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, f"seq-unet {step} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


def _trained(planted: dict, name: str, *overrides: str) -> Path:
    """Train and predict with ``overrides`` in ``<dir>/<name>``, on the dataset both heads share."""
    prepared = planted["dir"] / "prepared"
    if not prepared.is_dir():  # the windows and the dataset do not depend on the head (the kinetic
        for step in ("genome", "windows", "extract"):  # settings: their window-length check is the stricter)
            _seq_unet(step, planted, *KINETIC, out=str(prepared))
    out = planted["dir"] / name
    shutil.copytree(prepared, out)
    for step in ("train", "predict"):
        _seq_unet(step, planted, *overrides, out=str(out))
    return out / "predictions"


def _values(path: Path, chrom: str) -> np.ndarray:
    bw = pybigtools.open(str(path))
    try:
        return np.asarray(bw.values(chrom, 0, LENGTH))
    finally:
        bw.close()


def _pearson(pred_dir: Path, planted: dict) -> float:
    pred = np.concatenate([_values(pred_dir / "timing.bw", c).reshape(-1, RES).mean(1) for c in TEST])
    obs = np.concatenate([planted["values"][c] for c in TEST])
    return float(np.corrcoef(pred, obs)[0, 1])


def top_peaks(rate: np.ndarray, k: int, separation: int = 1000) -> np.ndarray:
    """Positions of the ``k`` highest local maxima of ``rate`` at least ``separation`` bases apart."""
    order = np.argsort(rate)[::-1]
    taken = np.zeros(len(rate), bool)
    peaks = []
    for i in order:
        if taken[i]:
            continue
        peaks.append(i)
        taken[max(0, i - separation) : i + separation + 1] = True
        if len(peaks) == k:
            break
    return np.array(peaks)


@pytest.mark.slow
def test_kinetic_head_finds_planted_origins_and_beats_the_linear_head(planted):
    kinetic = _trained(planted, "kinetic", *KINETIC)
    found, total = 0, 0
    for c in TEST:
        rate = _values(kinetic / "timing.initiation.bw", c)
        assert np.isfinite(rate).all() and (rate >= 0).all()
        sites = planted["sites"][c]
        peaks = top_peaks(rate, len(sites))
        found += sum(np.min(np.abs(peaks - s)) <= 1000 for s in sites)
        total += len(sites)
    r_kinetic = _pearson(kinetic, planted)
    linear = _trained(planted, "linear", "model.head=linear")
    r_linear = _pearson(linear, planted)
    print(f"planted origins found: {found}/{total}; held-out Pearson kinetic {r_kinetic:.3f}, linear {r_linear:.3f}")
    assert found >= 0.8 * total, f"only {found} of {total} planted origins are within 1 kb of a top initiation peak"
    assert r_kinetic >= 0.9
    assert r_kinetic > r_linear + 0.3

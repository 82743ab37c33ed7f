"""Helpers shared by the workflow tests: the tiny data config and the Snakemake command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

TINY_OVERRIDES = [
    "model.depth=2", "model.pool=4", "model.base_channels=8", "model.kernel_size=5", "model.bottleneck_blocks=2",
    "model.kinetic.bin_size=100", "model.kinetic.reach=1000",  # the default kinetic head, sized for 4-kb windows
    "trainer.max_epochs=2", "train.batch_size=4", "train.early_stopping_patience=0", "predict.batch_size=8",
]  # the evaluation follows data.target_resolution (100): scored at 100 and 1000 bp, baselines in 100-bp bins


def write_tiny_config(tmp_path: Path, tiny_genome: dict) -> Path:
    """``<tmp_path>/conf/data/tiny.yaml`` for the tiny genome; returns the conf folder."""
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "tiny.yaml").write_text(
        "name: tiny\n"
        f"fasta: {tiny_genome['fasta']}\n"
        f"tracks:\n  gc: {tiny_genome['tracks']['gc']}\n  noisy: {tiny_genome['tracks']['noisy']}\n"
        "blacklist: null\nval_chroms: [chrC]\ntest_chroms: [chrB]\n"
        "window_length: 4000\nstride: 2000\nmax_shift: 0\ntarget_resolution: 100\nmin_valid_fraction: 0.5\n"
    )
    return conf.parent


def snakemake_cmd(workdir: Path, conf_dir: Path, *extra: str, overrides: list[str] = TINY_OVERRIDES,
                  mc_samples: int = 2) -> tuple[list[str], dict]:
    """The command line and environment of a workflow run on the tiny data config."""
    exe = Path(sys.executable).parent / "snakemake"
    cmd = [str(exe), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--config", "data=tiny", f"conf_dir={conf_dir}", f"mc_samples={mc_samples}",
           f"overrides={' '.join(overrides)}", *extra]
    env = dict(os.environ, PATH=f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return cmd, env


def run_snakemake(workdir: Path, conf_dir: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    cmd, env = snakemake_cmd(workdir, conf_dir, *extra, **kw)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def failure_logs(run: subprocess.CompletedProcess, work: Path) -> str:
    logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in (work / "results/tiny/logs").glob("*.log"))
    return f"snakemake failed:\n{run.stderr[-5000:]}\n{logs}"

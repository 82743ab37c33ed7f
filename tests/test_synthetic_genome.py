"""The synthetic hg38-like genome (benchmarks/synthetic_genome.py): its layout at every scale, the FASTA,
the 5-kb bigWigs and the data config it writes, and the whole workflow run on it with experiment=scale."""

from __future__ import annotations

import gzip
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pyfaidx
import pytest
import yaml

from benchmarks.synthetic_genome import (
    BIN,
    CENTROMERES_MB,
    HG38_CHROM_SIZES,
    RANDOM_CONTIGS,
    UNPLACED_CONTIGS,
    generate,
    layout,
)
from tests.conftest import REPO

SCALE = 0.0005  # 1.9 Mbp: 24 chromosomes of 23-124 kb, chrM and 169 contigs of 1-100 kb


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return generate(out, SCALE, seed=3, name="synth")


@pytest.mark.parametrize("scale", [0.0005, 0.01, 0.1, 0.3, 1.0])
def test_layout_scales_every_piece_and_keeps_it_present(scale):
    contigs = layout(scale)
    primary = contigs[:24]
    assert [c.name for c in primary] == list(HG38_CHROM_SIZES)
    assert [c.name for c in contigs[24:]][0] == "chrM"
    random = [c for c in contigs if c.name.endswith("_random")]
    unplaced = [c for c in contigs if c.name.startswith("chrUn_")]
    assert len(random) == sum(RANDOM_CONTIGS.values()) and len(unplaced) == UNPLACED_CONTIGS
    assert len({c.name for c in contigs}) == len(contigs) == 25 + len(random) + len(unplaced)
    for c in primary:
        assert c.length == round(HG38_CHROM_SIZES[c.name] * scale)
        assert c.measured and c.gaps[0][0] == 0 and c.gaps[-1][1] == c.length   # telomere caps
        assert all(0 <= s < e <= c.length for s, e in c.gaps)
        assert all(e < s for (_, e), (s, _) in zip(c.gaps, c.gaps[1:]))      # sorted and disjoint
        mid = CENTROMERES_MB[c.name][0] * 1e6 * scale
        assert any(s <= mid <= e for s, e in c.gaps), c.name                 # the centromere
        assert sum(e - s for s, e in c.gaps) < 0.65 * c.length   # chrY: about half N in hg38
    assert all(c.length >= 970 and not c.gaps and not c.measured for c in contigs[24:])
    if scale == 1.0:
        assert sum(c.length for c in primary) == 3_088_269_832
        assert contigs[24].length == 16_569
        assert primary[0].gaps[0] == (0, 10_000)
        lengths = np.array([c.length for c in contigs[25:]])
        assert lengths.min() >= 1_000 and lengths.max() <= 200_000 and (lengths < 10_000).sum() >= 20


def test_fasta_has_hg38_names_scaled_lengths_and_n_runs_where_declared(synth):
    contigs = layout(SCALE, seed=3)
    fa = pyfaidx.Fasta(synth["fasta"])
    assert list(fa.keys()) == [c.name for c in contigs]
    gc = []
    for c in contigs:
        seq = np.frombuffer(str(fa[c.name][:]).encode(), dtype=np.uint8)
        assert len(seq) == c.length
        is_n = seq == ord("N")
        declared = np.zeros(c.length, dtype=bool)
        for s, e in c.gaps:
            declared[s:e] = True
        assert (is_n == declared).all(), c.name
        assert np.isin(seq[~is_n], np.frombuffer(b"ACGT", np.uint8)).all()
        gc.append(np.isin(seq[~is_n], np.frombuffer(b"GC", np.uint8)).sum() / max((~is_n).sum(), 1))
    assert 0.38 < np.median(gc) < 0.44


def test_bigwigs_hold_5kb_bins_in_1_to_2_and_nothing_over_n_runs(synth):
    contigs = layout(SCALE, seed=3)
    fa = pyfaidx.Fasta(synth["fasta"])
    for track, path in synth["tracks"].items():
        bw = pyBigWig.open(path)
        assert list(bw.chroms().items()) == [(c.name, c.length) for c in contigs]
        values, gcs = [], []
        for c in contigs:
            entries = bw.intervals(c.name) or ()
            if not c.measured:
                assert not entries, (track, c.name)
                continue
            for start, end, value in entries:
                assert start % BIN == 0 and (end - start == BIN or end == c.length), (track, c.name, start)
                assert all(end <= s or start >= e for s, e in c.gaps), (track, c.name, start)
                assert 1.0 <= value <= 2.0
                seq = str(fa[c.name][start:end]).upper()
                values.append(value)
                gcs.append((seq.count("G") + seq.count("C")) / len(seq))
        bw.close()
        assert len(values) > 100
        assert 0.2 < np.corrcoef(values, gcs)[0, 1] < 0.95, track   # learnable, in part, from sequence


def test_gzip_fasta_is_the_same_sequence(synth, tmp_path):
    gz = generate(tmp_path, SCALE, seed=3, compress=True, name="synth")
    assert gz["fasta"].endswith(".gz")
    with gzip.open(gz["fasta"], "rb") as fh:
        assert fh.read() == Path(synth["fasta"]).read_bytes()


def test_data_config_fits_the_default_model_and_the_scale_experiment(synth):
    from seq_unet.model.heads import check_window

    data = yaml.safe_load(Path(synth["config"]).read_text())
    assert Path(synth["config"]) == Path(synth["conf_dir"]) / "data" / "synth.yaml"
    assert data["name"] == "synth" and data["fasta"] == synth["fasta"]
    assert data["tracks"] == synth["tracks"] and data["target_resolution"] == BIN
    assert set(data["val_chroms"] + data["test_chroms"]) <= set(list(HG38_CHROM_SIZES)[:8])
    assert not set(data["val_chroms"]) & set(data["test_chroms"])
    window = data["window_length"]
    assert window % BIN == 0 and data["stride"] % BIN == 0 and data["max_shift"] % BIN == 0
    default = yaml.safe_load((REPO / "conf/model/unet.yaml").read_text())
    scale = yaml.safe_load((REPO / "conf/experiment/scale.yaml").read_text())["model"]
    assert window == math.lcm(BIN, math.prod(default["pool"]))
    check_window(default, window, BIN)
    for length in (window, 40_000, 5_000):   # the scale model takes any multiple of 5 kb
        check_window({**default, **scale}, length, BIN)
    with pytest.raises(ValueError, match="multiple of 1024"):
        check_window(default, window // 2, BIN)


@pytest.mark.slow
def test_workflow_runs_on_it_with_experiment_scale(synth, tmp_path):
    """genome -> ... -> metrics.tsv on 194 sequences, 5-kb targets; windows shortened to 40 kb for speed.
    The evaluation is at 5 and 50 kb and the baselines in 5-kb bins without an override of evaluate.*."""
    exe = Path(sys.executable).parent / "snakemake"
    # no evaluate.* override: the evaluation follows the data config's 5-kb target resolution
    overrides = ["experiment=scale", "data.window_length=40000", "data.stride=20000", "data.max_shift=10000"]
    cmd = [str(exe), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "2", "--config", "data=synth",
           f"conf_dir={synth['conf_dir']}", "mc_samples=0", f"overrides={' '.join(overrides)}"]
    env = dict(os.environ, PATH=f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    res = tmp_path / "results" / "synth"
    if run.returncode:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in (res / "logs").glob("*.log"))
        pytest.fail(f"snakemake failed:\n{run.stderr[-5000:]}\n{logs}")

    metrics = pd.read_csv(res / "eval" / "metrics.tsv", sep="\t")
    ours = metrics[(metrics.predictor == "seq-unet") & (metrics.split == "test") & (metrics.chrom == "all")]
    assert set(ours.track) == {"early", "late"} and set(ours.resolution_bp) == {5000, 50000}
    assert np.isfinite(ours.pearson).all() and (ours.n_bins > 0).all()
    assert set(metrics[metrics.predictor == "kmer_ridge"].resolution_bp) == {5000, 50000}
    ridge = pyBigWig.open(str(res / "baseline" / "early.kmer_ridge.bw"))   # fitted in 5-kb bins
    assert all(start % BIN == 0 for start, _, _ in ridge.intervals("chr1"))
    ridge.close()
    contigs = layout(SCALE, seed=3)
    bw = pyBigWig.open(str(res / "predictions" / "early.bw"))
    assert list(bw.chroms().items()) == [(c.name, c.length) for c in contigs]
    bw.close()

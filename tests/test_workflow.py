"""End to end: the Snakemake workflow on the tiny synthetic genome, in a temporary folder."""

from __future__ import annotations

import hashlib
import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pybigtools
import pytest
import torch

from tests.workflow_helpers import failure_logs, write_tiny_config
from tests.workflow_helpers import run_snakemake as _snakemake


@pytest.mark.slow
def test_snakemake_end_to_end(tiny_genome, tmp_path):
    conf = write_tiny_config(tmp_path, tiny_genome)
    work = tmp_path / "work"
    work.mkdir()
    run = _snakemake(work, conf)
    if run.returncode != 0:
        pytest.fail(failure_logs(run, work))
    res = work / "results" / "tiny"

    # per-base predictions (Monte Carlo mean) and their uncertainty: header in FASTA order with
    # true lengths, a value at every base
    sizes = tiny_genome["sizes"]
    for track in ("gc", "noisy", "gc.std", "noisy.std"):
        bw = pybigtools.open(str(res / "predictions" / f"{track}.bw"))
        assert list(bw.chroms().items()) == list(sizes.items())
        assert bw.info()["zoomLevels"] > 0
        for chrom, n in sizes.items():
            v = np.asarray(bw.values(chrom, 0, n, fillna=None))
            assert np.isfinite(v).all(), (track, chrom)
        bw.close()

    # the checkpoint describes itself: settings, and the provenance of the run that made it
    from seq_unet import __version__
    from seq_unet.checkpoint import KEY, load_module, read_checkpoint
    from seq_unet.io.genome import file_md5

    model = load_module(res / "train" / "best.ckpt")
    assert model.tracks == ["gc", "noisy"] and model.hparams.window_length == 4000
    # the default kinetic head: one initiation-rate track shared by both tracks, per-base values for each
    assert model.hparams.model["head"] == "kinetic" and model.net(torch.zeros(1, 4, 4000)).shape == (1, 1, 4000)
    with torch.no_grad():
        assert model(torch.zeros(1, 4, 4000)).shape == (1, 2, 4000)
    prov = read_checkpoint(res / "train" / "best.ckpt")[KEY]
    manifest = json.loads((res / "dataset" / "manifest.json").read_text())
    assert prov["version"] == manifest["seq_unet_version"] == __version__
    assert prov["dataset_md5"] == hashlib.md5((res / "dataset" / "manifest.json").read_bytes()).hexdigest()
    assert prov["genome_md5"] == file_md5(res / "genome" / "genome.fa") == manifest["genome_md5"]
    assert prov["track_md5"] == {t: file_md5(p) for t, p in tiny_genome["tracks"].items()}
    assert prov["config"]["model"]["depth"] == 2 and prov["config"]["data"]["name"] == "tiny"
    assert prov["config"]["trainer"]["max_epochs"] == 2

    metrics = pd.read_csv(res / "eval" / "metrics.tsv", sep="\t")
    assert {"track", "split", "chrom", "resolution_bp", "pearson", "spearman", "mse", "n_bins"} <= set(metrics.columns)
    assert set(metrics.predictor) == {"seq-unet", "kmer_ridge", "gc"}
    test_rows = metrics[(metrics.split == "test") & (metrics.chrom == "all")]
    assert set(test_rows.resolution_bp) == {100, 1000}
    assert (test_rows.n_bins > 0).all()
    # the gc baseline recovers the synthetic gc track (it is smoothed GC by construction)
    gc_row = test_rows[(test_rows.predictor == "gc") & (test_rows.track == "gc") & (test_rows.resolution_bp == 1000)]
    assert gc_row.pearson.iloc[0] > 0.5
    assert (res / "eval" / "gc.test_chroms.png").stat().st_size > 1000
    origins = pd.read_csv(res / "eval" / "origins.tsv", sep="\t")
    assert {("gc", "measured"), ("gc", "seq-unet")} <= set(zip(origins.track, origins.signal))
    assert ((origins.peaks > 0) & origins.random_fraction.between(0, 1)).all()

    session = res / "browser" / "igv_session.xml"
    root = ET.parse(session).getroot()
    assert (session.parent / root.get("genome")).resolve().exists()
    for r in root.iter("Resource"):
        assert (session.parent / r.get("path")).resolve().exists(), r.get("path")
    names = {r.get("name") for r in root.iter("Resource")}
    assert {"gc predicted", "gc uncertainty (sd)", "gc measured"} <= names, names
    assert {n for n in names if "initiation" in n} == {"gc initiation rate (per min and kb)",
                                                       "noisy initiation rate (per min and kb)"}, names
    # the track hub: an assembly hub (the tiny genome is no UCSC assembly) whose paths all resolve
    hub = res / "browser" / "hub"
    genomes = dict(line.split(" ", 1) for line in (hub / "genomes.txt").read_text().splitlines() if line)
    assert (hub / genomes["twoBitPath"]).stat().st_size > 0
    urls = [line.split(" ", 1)[1] for line in (hub / genomes["trackDb"]).read_text().splitlines()
            if line.startswith("bigDataUrl ")]
    # predicted, uncertainty, initiation rate and measured, for each of the two tracks
    assert len(urls) == 8 and all((hub / genomes["trackDb"]).parent.joinpath(u).resolve().is_file() for u in urls)

    # a second run right after a complete run has nothing to do
    again = _snakemake(work, tmp_path / "conf", "--dry-run")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    shutil.rmtree(work / ".snakemake", ignore_errors=True)


@pytest.mark.slow
def test_a_failed_step_shows_its_error_in_the_snakemake_output(tiny_genome, tmp_path):
    conf = write_tiny_config(tmp_path, tiny_genome)
    data = conf / "data" / "tiny.yaml"
    data.write_text(data.read_text().replace("test_chroms: [chrB]", "test_chroms: [chrZ]"))
    work = tmp_path / "work"
    work.mkdir()
    run = _snakemake(work, conf, "--until", "windows")
    assert run.returncode != 0
    assert ("results/tiny/logs/windows.log: seq-unet windows: error: test chromosomes ['chrZ'] are not in the "
            "FASTA") in run.stderr, run.stderr[-3000:]
    assert not (work / "results/tiny/windows/windows.tsv").exists()

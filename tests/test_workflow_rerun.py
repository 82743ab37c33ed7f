"""What a change reruns: after one complete tiny run, a dry run plans exactly the steps that read the
changed value (and those downstream of them); `snakemake --report` builds one page of the results."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.workflow_helpers import TINY_OVERRIDES, failure_logs, run_snakemake, write_tiny_config

pytestmark = pytest.mark.slow

# the tiny run, made quicker: one epoch, no Monte Carlo passes; the model from its own YAML file
# (conf_dir/model/tiny.yaml, a copy of conf/model/unet.yaml) with the tiny sizes given as overrides
OVERRIDES = ["model=tiny"] + [o.replace("trainer.max_epochs=2", "trainer.max_epochs=1") for o in TINY_OVERRIDES]
MC_SAMPLES = 0
DOWNSTREAM_OF_TRAIN = {"train", "predict", "evaluate", "browser"}


@pytest.fixture(scope="module")
def done(tiny_genome, tmp_path_factory):
    """A complete run of the workflow and its report: (work folder, conf folder)."""
    tmp = tmp_path_factory.mktemp("rerun")
    conf = write_tiny_config(tmp, tiny_genome)
    (conf / "model").mkdir()
    shutil.copy(REPO / "conf" / "model" / "unet.yaml", conf / "model" / "tiny.yaml")
    work = tmp / "work"
    work.mkdir()
    run = run_snakemake(work, conf, overrides=OVERRIDES, mc_samples=MC_SAMPLES)
    if run.returncode != 0:
        pytest.fail(failure_logs(run, work))
    report = run_snakemake(work, conf, "--report", "report.html", overrides=OVERRIDES, mc_samples=MC_SAMPLES)
    assert report.returncode == 0, (report.stdout + report.stderr)[-3000:]
    return work, conf


def planned(work: Path, conf: Path, overrides: list[str] = OVERRIDES, mc_samples: int = MC_SAMPLES) -> set[str]:
    """The steps a dry run would run (the job-stats table, less the target rule `all`)."""
    run = run_snakemake(work, conf, "--dry-run", overrides=overrides, mc_samples=mc_samples)
    text = run.stdout + run.stderr
    assert run.returncode == 0, text[-3000:]
    if "Nothing to be done" in text:
        return set()
    table = re.search(r"Job stats:\njob\s+count\n[- ]+\n(.*?)\ntotal\s+\d+\n", text, re.S)
    assert table, text[-3000:]
    jobs = {}
    for line in table.group(1).splitlines():
        name, count = line.split()
        jobs[name] = int(count)
    assert jobs.pop("all") == 1, jobs
    assert set(jobs.values()) == {1}, jobs
    return set(jobs)


def edited_conf(conf: Path, tmp_path: Path, path: str, old: str, new: str) -> Path:
    """A copy of the conf folder with ``old`` replaced by ``new`` in ``path``."""
    copy = tmp_path / "conf"
    shutil.copytree(conf, copy)
    file = copy / path
    text = file.read_text()
    assert text.count(old) == 1, (path, old)
    file.write_text(text.replace(old, new))
    return copy


def with_override(key: str, value: str) -> list[str]:
    """The run's overrides with ``key`` set to ``value`` (replaced where given, else added)."""
    kept = [o for o in OVERRIDES if not o.startswith(f"{key}=")]
    return kept + [f"{key}={value}"]


def test_nothing_changed_plans_nothing(done):
    work, conf = done
    assert planned(work, conf) == set()


def test_a_model_value_edited_in_its_yaml_file_reruns_training_and_what_follows(done, tmp_path):
    work, conf = done
    edited = edited_conf(conf, tmp_path, "model/tiny.yaml", "dropout: 0.2", "dropout: 0.3")
    # genome, windows, extract and the baselines do not read model.dropout
    assert planned(work, edited) == DOWNSTREAM_OF_TRAIN


def test_a_model_override_reruns_the_same_steps_as_the_yaml_edit(done):
    work, conf = done
    assert planned(work, conf, with_override("model.dropout", "0.3")) == DOWNSTREAM_OF_TRAIN


def test_the_stride_reruns_windows_and_everything_after_it(done, tmp_path):
    work, conf = done
    edited = edited_conf(conf, tmp_path, "data/tiny.yaml", "stride: 2000", "stride: 1000")
    # the genome and the baselines (fit on the genome and the tracks) stay
    assert planned(work, edited) == {"windows", "extract"} | DOWNSTREAM_OF_TRAIN


def test_the_target_resolution_reruns_every_step_after_the_genome(done, tmp_path):
    """The evaluation's bin sizes and the baselines' bins follow data.target_resolution (interpolations in
    conf/config.yaml): their digests hold the resolved values, so baseline and evaluate rerun too."""
    work, conf = done
    edited = edited_conf(conf, tmp_path, "data/tiny.yaml", "target_resolution: 100", "target_resolution: 200")
    assert planned(work, edited) == {"windows", "extract", "baseline"} | DOWNSTREAM_OF_TRAIN


def test_a_baseline_option_reruns_the_baselines_and_the_evaluation(done):
    work, conf = done
    assert planned(work, conf, with_override("evaluate.baseline_bin", "200")) == {"baseline", "evaluate"}


def test_a_browser_option_reruns_the_browser_files_only(done):
    work, conf = done
    assert planned(work, conf, with_override("browser.hub_email", "me@example.org")) == {"browser"}


def test_a_key_no_step_reads_reruns_nothing(done, tmp_path):
    """Another conf folder with the same values, and a value of the sweep summary (no workflow step)."""
    work, conf = done
    edited = edited_conf(conf, tmp_path, "data/tiny.yaml", "stride: 2000", "stride: 2000  # same value")
    assert planned(work, edited, with_override("sweep.resolution", "2000")) == set()


def test_the_report_holds_metrics_plots_resources_and_configuration(done):
    work, _ = done
    html = (work / "report.html").read_text()
    # the report's files are embedded as data URIs; decode them to compare with the results
    embedded = [base64.b64decode(m).decode("utf-8", "replace")
                for m in re.findall(r"data:[^,\"]*;base64,([A-Za-z0-9+/=]+)", html)]
    blob = html + "\n".join(embedded)
    assert not re.search(r"<(?:script|link|img)[^>]+(?:src|href)=\"https?:", html)  # self-contained
    res = work / "results" / "tiny"
    metrics = pd.read_csv(res / "eval" / "metrics.tsv", sep="\t")
    assert set(metrics.predictor) == {"seq-unet", "kmer_ridge", "gc"}
    metrics_text = (res / "eval" / "metrics.tsv").read_text()
    assert metrics_text in blob
    # a value of the table, as the evaluate step wrote it
    row = metrics[(metrics.predictor == "kmer_ridge") & (metrics.split == "test") & (metrics.chrom == "all")].iloc[0]
    assert f"{row.pearson:.4f}" in blob
    for step in ("genome", "windows", "extract", "train", "predict", "baseline", "evaluate", "browser"):
        assert (res / "benchmarks" / f"{step}.tsv").read_text() in blob, step
    assert "max_rss" in blob
    assert "target_resolution: 100" in blob  # the configuration the steps composed
    # the captions (workflows/report/*.rst)
    for phrase in ("Test chromosomes were never used for training", "peak resident memory",
                   "The configuration every step composed", "Origin proxy"):
        assert phrase in blob, phrase
    # the plots
    assert "gc.test_chroms.png" in blob and "noisy.test_chroms.png" in blob


def test_a_geometry_value_of_the_model_also_reruns_the_window_check(done):
    """windows refuses a window length the U-Net cannot take: it reads the model's geometry."""
    work, conf = done
    assert planned(work, conf, with_override("model.kernel_size", "3")) == {"windows", "extract"} | DOWNSTREAM_OF_TRAIN


def test_a_workflow_setting_reruns_the_steps_it_reaches(done):
    """mc_samples (workflow config): the prediction's Monte Carlo passes; its uncertainty tracks are new outputs."""
    work, conf = done
    assert planned(work, conf, mc_samples=2) == {"predict", "evaluate", "browser"}

"""benchmarks/bench_scale.py: the table and the scaling exponents, on fake Snakemake benchmark files with
known answers (the workflow itself is not run here)."""

from __future__ import annotations

import math
import os

import pytest

from benchmarks.bench_scale import (
    bytes_per_base,
    collect,
    exponent,
    exponents,
    folder_bytes,
    long_table,
    markdown,
    read_benchmark,
    wide_table,
)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def fake_results(root, steps):
    """results/<name>/ with a benchmark file and ``disk`` bytes of output per step: {step: (s, max_rss, disk)}."""
    folders = {"extract": "dataset", "evaluate": "eval", "train": "train"}
    (root / "benchmarks").mkdir(parents=True)
    for step, (seconds, rss, disk) in steps.items():
        (root / "benchmarks" / f"{step}.tsv").write_text(
            HEADER + f"{seconds}\t0:00:{seconds:02.0f}\t{rss}\t{2 * rss}\t{rss}\t{rss}\t0.5\t7.25\t90.0\t{seconds}\n")
        out = root / folders[step] / "sub"
        out.mkdir(parents=True)
        (out / "a.bin").write_bytes(b"x" * (disk - disk // 4))
        (out / "b.bin").write_bytes(b"y" * (disk // 4))
    return root


@pytest.fixture
def runs(tmp_path):
    small = fake_results(tmp_path / "small", {"extract": (10, 100, 4_000_000), "train": (30, 50, 1_000),
                                              "evaluate": (5, 200, 2_000)})
    large = fake_results(tmp_path / "large", {"extract": (40, 100, 64_000_000), "train": (30, 400, 1_000),
                                              "evaluate": (5, 200, 2_000)})
    (large / "train" / "link.bin").symlink_to(large / "dataset" / "sub" / "a.bin")   # not counted
    return [{"scale": 0.01, "rows": collect(small, 1_000_000)}, {"scale": 0.16, "rows": collect(large, 16_000_000)}]


def test_read_benchmark_takes_time_rss_and_io_out(tmp_path):
    path = tmp_path / "b.tsv"
    path.write_text(HEADER + "12.5\t0:00:12\t345.6\t1\t1\t1\t0\t7.25\t50\t11\n"
                    + "13.5\t0:00:13\t355.6\t1\t1\t1\t0\t8.25\t50\t11\n")   # --benchmark-repeats: the mean
    assert read_benchmark(path) == {"seconds": 13.0, "max_rss_mb": 350.6, "max_pss_mb": 1.0, "io_out_mb": 7.75}
    path.write_text(HEADER + "1.0\t0:00:01\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")   # too short to sample
    assert math.isnan(read_benchmark(path)["max_rss_mb"])


def test_collect_reads_each_step_and_sizes_its_output_folders(runs):
    rows = {r["step"]: r for r in runs[1]["rows"]}
    assert list(rows) == ["extract", "train", "evaluate"]   # workflow order; steps without a file left out
    assert rows["extract"]["disk_mb"] == 64.0 and rows["train"]["disk_mb"] == 0.001   # the link not counted
    assert rows["extract"]["seconds"] == 40 and rows["train"]["max_rss_mb"] == 400
    assert bytes_per_base(runs) == {0.01: 4.0, 0.16: 4.0}


def test_exponents_have_the_known_answers(runs):
    table = long_table(runs)
    exps = exponents(table).set_index(["step", "measure"]).exponent
    # 16x the bases: time x4 -> 0.5, disk x16 -> 1, memory x8 -> 0.75, flat -> 0
    assert exps["extract", "seconds"] == pytest.approx(0.5)
    assert exps["extract", "disk_mb"] == pytest.approx(1.0)
    assert exps["extract", "max_rss_mb"] == pytest.approx(0.0)
    assert exps["train", "max_rss_mb"] == pytest.approx(0.75)
    assert exps["evaluate", "seconds"] == pytest.approx(0.0)
    assert exponent(2.0, 8.0, 10, 1000) == pytest.approx(math.log(4) / math.log(100))
    assert math.isnan(exponent(0.0, 8.0, 10, 1000)) and math.isnan(exponent(math.nan, 8.0, 10, 1000))


def test_wide_table_and_markdown(runs):
    wide = wide_table(long_table(runs), bytes_per_base(runs))
    assert list(wide.columns) == ["step", "measure", "0.01 (1.0 Mbp)", "0.16 (16.0 Mbp)", "exponent"]
    assert len(wide) == 3 * 3 + 1
    extract_time = wide[(wide.step == "extract") & (wide.measure == "time (s)")].iloc[0]
    assert (extract_time["0.01 (1.0 Mbp)"], extract_time["0.16 (16.0 Mbp)"], extract_time.exponent) == \
        ("10.0", "40.0", "0.50")
    assert wide.iloc[-1].measure == "dataset bytes/base" and wide.iloc[-1]["0.16 (16.0 Mbp)"] == "4.00"
    text = markdown(wide)
    lines = text.splitlines()
    assert lines[0] == "| step | measure | 0.01 (1.0 Mbp) | 0.16 (16.0 Mbp) | exponent |"
    assert lines[1] == "|---|---|---|---|---|" and len(lines) == 2 + len(wide)
    assert "| extract | disk (MB) | 4.0 | 64.0 | 1.00 |" in lines


def test_folder_bytes_of_a_file_a_missing_path_and_a_link(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    os.symlink(f, tmp_path / "l")
    assert folder_bytes(f) == 3 and folder_bytes(tmp_path / "l") == 0 and folder_bytes(tmp_path / "none") == 0
    assert folder_bytes(tmp_path) == 3

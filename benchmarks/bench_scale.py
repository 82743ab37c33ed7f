"""The whole workflow on the synthetic hg38-like genome at several scales: time, memory and disk per step.

    python -m benchmarks.bench_scale --scales 0.003 0.01 0.03 --out scale.md
    python -m benchmarks.bench_scale --scales 0.003 0.01 --workdir /scratch/bench --keep --out scale.tsv

For each scale this writes the genome with :mod:`benchmarks.synthetic_genome`
(``python -m benchmarks.synthetic_genome`` in a child process, timed, its peak
resident memory from ``wait4``), then runs the whole Snakemake workflow on it
with ``experiment=scale`` (``conf/experiment/scale.yaml``: a small one-epoch
model) and ``mc_samples=0`` in a work folder of its own (``snakemake -s
<repository>/Snakefile -d <workdir>/<name>``), so nothing lands in the
repository. The data config is the generator's (5-kb targets, 640-kb windows);
chr1 is shorter than a window below scale 0.0026, so smaller scales need
``--overrides "data.window_length=..."``.

Per step it reads Snakemake's benchmark file (``results/<name>/benchmarks/<step>.tsv``):
wall time (``s``) and peak resident memory (``max_rss``, MB). The disk a step
takes is the size of the regular files under its output folders (symbolic
links not counted; ``io_out``, Snakemake's sampled write counter, misses the
writes of short-lived children and is only kept in the TSV for comparison).
``generate`` is the genome generator (its output folder); ``workflow`` is the
whole Snakemake run (wall time of the command, all of ``results/<name>``).
``dataset bytes/base`` is the extract step's output size over the genome's length.
Each scale's figures are also written to ``<workdir>/<name>.json`` as soon as
that scale is done.

Printed, and written to ``--out`` (markdown, or TSV if the name ends in .tsv):
step x scale for time, memory and disk, and each measure's scaling exponent
from the smallest to the largest scale, log(value_large / value_small) /
log(bases_large / bases_small): 1 grows with the genome, 0 stays flat.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# each workflow step and the folders (under results/<name>/) its outputs are in (with Hydra's record of
# the run, <step>/.hydra and <step>.log, which is in the output folder or beside it)
STEP_FOLDERS = {
    "genome": ["genome"],
    "windows": ["windows"],
    "extract": ["dataset", "extract"],
    "train": ["train"],
    "predict": ["predictions", "predict"],
    "baseline": ["baseline"],
    "evaluate": ["eval", "evaluate"],
    "browser": ["browser"],
}
MEASURES = {"seconds": "time (s)", "max_rss_mb": "peak RSS (MB)", "disk_mb": "disk (MB)"}
MB = 1e6


def folder_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (or of ``path`` itself); symbolic links are not followed."""
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            f = Path(root) / name
            if not f.is_symlink() and f.is_file():
                total += f.stat().st_size
    return total


def read_benchmark(path: Path) -> dict:
    """Seconds, peak RSS, peak PSS and io_out (MB) from one Snakemake benchmark file (the mean over its repeats).

    Snakemake sums RSS over the step's processes, so shared pages count once per process (train's
    DataLoader workers); PSS shares them out."""
    df = pd.read_csv(path, sep="\t")
    values = {}
    columns = {"seconds": "s", "max_rss_mb": "max_rss", "max_pss_mb": "max_pss", "io_out_mb": "io_out"}
    for key, column in columns.items():
        col = pd.to_numeric(df[column], errors="coerce") if column in df else pd.Series(dtype=float)
        values[key] = float(col.mean()) if col.notna().any() else math.nan
    return values


def collect(results: Path, bases: int) -> list[dict]:
    """One row per workflow step found under ``results`` (``results/<name>``): its benchmark and output size."""
    rows = []
    for step, folders in STEP_FOLDERS.items():
        bench = results / "benchmarks" / f"{step}.tsv"
        if not bench.exists():
            continue
        row = {"step": step, "bases": bases, **read_benchmark(bench)}
        row["disk_mb"] = sum(folder_bytes(results / f) for f in folders) / MB
        rows.append(row)
    return rows


def exponent(small: float, large: float, bases_small: int, bases_large: int) -> float:
    """log(large / small) / log(bases_large / bases_small); NaN where a value is missing or not positive."""
    if not (small > 0 and large > 0) or bases_large == bases_small:
        return math.nan
    return math.log(large / small) / math.log(bases_large / bases_small)


def long_table(runs: list[dict]) -> pd.DataFrame:
    """All rows of all scales: step, scale, bases and the measures."""
    rows = [{"scale": run["scale"], **row} for run in runs for row in run["rows"]]
    return pd.DataFrame(rows, columns=["step", "scale", "bases", "seconds", "max_rss_mb", "max_pss_mb", "disk_mb",
                                       "io_out_mb"])


def exponents(table: pd.DataFrame) -> pd.DataFrame:
    """Per step and measure, the exponent from the smallest to the largest scale that step has."""
    out = []
    for step, group in table.groupby("step", sort=False):
        group = group.sort_values("bases")
        first, last = group.iloc[0], group.iloc[-1]
        for measure in MEASURES:
            out.append({"step": step, "measure": measure,
                        "exponent": exponent(first[measure], last[measure], first.bases, last.bases)})
    return pd.DataFrame(out, columns=["step", "measure", "exponent"])


def wide_table(table: pd.DataFrame, bytes_per_base: dict[float, float]) -> pd.DataFrame:
    """Rows: step x measure; columns: one per scale, then the exponent; last row the dataset's bytes per base."""
    scales = sorted(table.scale.unique())
    bases = table.groupby("scale").bases.first()
    headers = {s: f"{s:g} ({bases[s] / 1e6:.1f} Mbp)" for s in scales}
    exps = exponents(table).set_index(["step", "measure"]).exponent
    rows = []
    for step in table.step.unique():
        for measure, label in MEASURES.items():
            row = {"step": step, "measure": label}
            for s in scales:
                value = table[(table.step == step) & (table.scale == s)][measure]
                row[headers[s]] = _fmt(value.iloc[0]) if len(value) else ""
            row["exponent"] = _fmt(exps.get((step, measure), math.nan), 2)
            rows.append(row)
    row = {"step": "extract", "measure": "dataset bytes/base"}
    row.update({headers[s]: _fmt(bytes_per_base.get(s, math.nan), 2) for s in scales})
    row["exponent"] = ""
    rows.append(row)
    return pd.DataFrame(rows)


def _fmt(value: float, digits: int | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if digits is not None:
        return f"{value:.{digits}f}"
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"


def markdown(wide: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(wide.columns) + " |", "|" + "---|" * len(wide.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in wide.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def bytes_per_base(runs: list[dict]) -> dict[float, float]:
    """The extract step's output size over the genome length, per scale."""
    out = {}
    for run in runs:
        for row in run["rows"]:
            if row["step"] == "extract":
                out[run["scale"]] = row["disk_mb"] * MB / row["bases"]
    return out


def _timed_child(cmd: list[str], **kwargs) -> tuple[int, float, float, str, str]:
    """Run ``cmd``: exit code, seconds, peak RSS of the child (MB), stdout and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, seconds, usage.ru_maxrss * 1024 / MB, out.read().decode(), err.read().decode()


def _failed_steps(results: Path) -> list[str]:
    """The last line of each step's log that ends without its benchmark (the step that failed)."""
    lines = []
    for log in sorted((results / "logs").glob("*.log")):
        if (results / "benchmarks" / f"{log.stem}.tsv").exists():
            continue
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        lines.append(f"{log.stem}: {tail[-1] if tail else '(empty log)'}")
    return lines


def run_scale(scale: float, workdir: Path, cores: int, mc_samples: int, overrides: str) -> dict:
    """Generate the genome at ``scale`` and run the workflow on it; the rows of :func:`collect` and more."""
    name = f"synth_hg38_{scale:g}".replace(".", "p")
    genome_dir, work = workdir / f"{name}_genome", workdir / name
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    rc, seconds, rss, out, err = _timed_child(
        [sys.executable, "-m", "benchmarks.synthetic_genome", "--scale", f"{scale:g}", "--out", str(genome_dir),
         "--name", name], cwd=REPO, env=env)
    if rc:
        raise RuntimeError(f"scale {scale:g}: the generator failed:\n{err[-3000:]}")
    summary = json.loads(out)
    bases = summary["bases"]
    rows = [{"step": "generate", "bases": bases, "seconds": seconds, "max_rss_mb": rss,
             "disk_mb": folder_bytes(genome_dir) / MB, "io_out_mb": math.nan}]
    cmd = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", str(cores),
           "--config", f"data={name}", f"conf_dir={summary['conf_dir']}", f"mc_samples={mc_samples}",
           f"overrides={overrides}"]
    print(f"scale {scale:g} ({bases / 1e6:.1f} Mbp), genome in {seconds:.1f} s: {' '.join(cmd)}", flush=True)
    rc, seconds, _, _, err = _timed_child(cmd, env=env)
    results = work / "results" / name
    rows += collect(results, bases)
    failed = _failed_steps(results) if rc else []
    if rc and not failed:
        failed = [f"snakemake exited with {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}"]
    if not rc:
        rows.append({"step": "workflow", "bases": bases, "seconds": seconds, "max_rss_mb": math.nan,
                     "disk_mb": folder_bytes(results) / MB, "io_out_mb": math.nan})
    return {"scale": scale, "name": name, "bases": bases, "rows": rows, "failed": failed, "command": cmd}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scales", type=float, nargs="+", default=[0.003, 0.01, 0.03], help="fractions of hg38's size")
    p.add_argument("--workdir", type=Path, help="where genomes and runs go (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the genomes and the runs' results")
    p.add_argument("--out", type=Path, help="write the table here (markdown; TSV if the name ends in .tsv)")
    p.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    p.add_argument("--mc-samples", type=int, default=0, help="Monte Carlo dropout passes at prediction")
    p.add_argument("--overrides", default="experiment=scale", help="Hydra overrides of every step")
    args = p.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    workdir.mkdir(parents=True, exist_ok=True)
    runs = []
    for scale in sorted(args.scales):
        t0 = time.perf_counter()
        try:
            run = run_scale(scale, workdir, args.cores, args.mc_samples, args.overrides)
        finally:
            if not args.keep:   # only what this scale wrote, not the rest of --workdir
                name = f"synth_hg38_{scale:g}".replace(".", "p")
                for path in (workdir / name, workdir / f"{name}_genome"):
                    shutil.rmtree(path, ignore_errors=True)
        runs.append(run)
        # each scale's figures as soon as it is done, in case a larger one is interrupted
        (workdir / f"{run['name']}.json").write_text(json.dumps(run, indent=1, default=str))
        print(f"scale {scale:g}: {time.perf_counter() - t0:.0f} s in all"
              + "".join(f"\n  FAILED {line}" for line in run["failed"]), flush=True)
    if not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    table = long_table(runs)
    wide = wide_table(table, bytes_per_base(runs))
    text = markdown(wide)
    print(text)
    if args.out:
        args.out.write_text(wide.to_csv(sep="\t", index=False) if args.out.suffix == ".tsv" else text)


if __name__ == "__main__":
    main()

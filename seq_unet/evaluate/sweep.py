"""Summarise a Hydra multirun of ``seq-unet train``: one row per run, one per variant.

A run folder is one the train step wrote (``train_summary.json``, ``best.ckpt``,
``.hydra/overrides.yaml``). Runs that differ only in ``seed`` form a variant.
With ``predict=True`` every run's checkpoint predicts the genome (bigWigs in
``<run>/predictions``, reused when already there) and is scored from those
files on the validation and test chromosomes, exactly like the pipeline's
evaluate step; otherwise only the window-level validation score of training is
reported.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from seq_unet.errors import InputError

log = logging.getLogger(__name__)


def find_runs(sweep_dir: str | Path) -> list[Path]:
    """Run folders under ``sweep_dir`` (any depth) that hold a finished training summary."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise InputError(f"sweep folder {sweep_dir} does not exist")
    runs = sorted((p.parent for p in sweep_dir.rglob("train_summary.json")), key=_natural)
    if not runs:
        raise InputError(f"no finished training run (train_summary.json) under {sweep_dir}")
    return runs


def _natural(path: Path) -> tuple:
    return tuple(int(s) if s.isdigit() else s for s in path.parts)


def run_overrides(run: Path) -> list[str]:
    """The command-line overrides of one run (Hydra's record, else the training summary's)."""
    f = run / ".hydra" / "overrides.yaml"
    if f.exists():
        return [str(o) for o in (yaml.safe_load(f.read_text()) or [])]
    return list(json.loads((run / "train_summary.json").read_text()).get("overrides", []))


def variant_of(overrides: list[str]) -> tuple[str, int | None]:
    """Split overrides into a variant label (everything but the seed) and the seed."""
    seed, rest = None, []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+~") == "seed":
            seed = int(value)
        elif not key.startswith("hydra."):
            rest.append(o)
    return (" ".join(rest) or "(defaults)"), seed


def summarise(sweep_dir: str | Path, observed: dict[str, str], chrom_sizes: dict[str, int],
              split_of: dict[str, str], fasta: str | Path, resolution: int = 1000, predict: bool = True,
              predict_kwargs: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every run of a sweep; return ``(runs, variants)`` tables.

    ``runs`` is sorted by the validation score (best first): the genome-wide
    validation Pearson at ``resolution`` (mean over tracks) when ``predict``,
    else training's window-level ``best_val_pearson``. ``variants`` gives the
    mean and standard deviation over seeds of every score, the parameter count
    and the training time.
    """
    from seq_unet.evaluate.metrics import evaluate

    rows = []
    for run in find_runs(sweep_dir):
        summary = json.loads((run / "train_summary.json").read_text())
        variant, seed = variant_of(run_overrides(run))
        row = {"run": str(run), "variant": variant, "seed": seed, "parameters": summary.get("parameters"),
               "epochs": summary.get("epochs"), "train_seconds": summary.get("train_seconds"),
               "window_val_pearson": summary.get("best_val_pearson"), "checkpoint": str(run / "best.ckpt")}
        if predict:
            paths = _predict_run(run, fasta, list(observed), predict_kwargs or {})
            df = evaluate({"run": {t: str(p) for t, p in paths.items()}}, observed, chrom_sizes, split_of,
                          [resolution])
            pooled = df[df.chrom == "all"]
            val = pooled[pooled.split == "val"]
            row["val_pearson"] = float(val.pearson.mean()) if len(val) else float("nan")
            for r in pooled[pooled.split == "test"].itertuples():
                row[f"test_pearson_{r.track}"] = r.pearson
            for r in df[(df.split == "test") & (df.chrom != "all")].itertuples():
                row[f"test_pearson_{r.track}_{r.chrom}"] = r.pearson
        rows.append(row)
        log.info("%s  %s seed=%s  %s", run, variant, seed,
                 " ".join(f"{k}={v:.3f}" for k, v in row.items() if "pearson" in k and v is not None))
    runs = pd.DataFrame(rows)
    key = "val_pearson" if predict else "window_val_pearson"
    runs = runs.sort_values(key, ascending=False, kind="stable").reset_index(drop=True)
    return runs, variant_table(runs)


def variant_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per variant of every score, parameters and training time."""
    scores = [c for c in runs.columns if "pearson" in c]
    out = []
    for variant, g in runs.groupby("variant", sort=False):
        row = {"variant": variant, "runs": len(g), "parameters": int(g.parameters.iloc[0]),
               "train_minutes_mean": float(g.train_seconds.mean() / 60), "epochs_mean": float(g.epochs.mean())}
        for c in scores:
            v = g[c].astype(float).to_numpy()
            row[f"{c}_mean"] = float(np.mean(v))
            row[f"{c}_sd"] = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
        out.append(row)
    return pd.DataFrame(out)


def _predict_run(run: Path, fasta: str | Path, tracks: list[str], kwargs: dict) -> dict[str, Path]:
    from seq_unet.predict.genome_wide import predict_genome

    out = run / "predictions"
    paths = {t: out / f"{t}.bw" for t in tracks}
    if all(p.exists() for p in paths.values()):  # written atomically: present means complete
        return paths
    written = predict_genome(run / "best.ckpt", fasta, out, **kwargs)
    missing = set(tracks) - set(written)
    if missing:
        raise InputError(f"checkpoint {run / 'best.ckpt'} does not predict tracks {sorted(missing)}")
    return {t: written[t] for t in tracks}


def markdown(variants: pd.DataFrame, tracks: list[str]) -> str:
    """The variant table as Markdown (held-out Pearson mean ± sd per track)."""
    cols = ["variant", "runs", "parameters", "train min"] + [f"test r {t}" for t in tracks] + ["val r"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in variants.to_dict("records"):
        cells = [r["variant"], str(r["runs"]), f"{r['parameters']:,}", f"{r['train_minutes_mean']:.1f}"]
        for name in [f"test_pearson_{t}" for t in tracks] + ["val_pearson"]:
            m, s = r.get(f"{name}_mean"), r.get(f"{name}_sd")
            cells.append("n/a" if m is None else f"{m:.3f} ± {s:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

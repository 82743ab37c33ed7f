"""Summarise a Hydra multirun of ``seq-unet train``: one row per run, one per variant.

A run folder is one the train step wrote (``train_summary.json``, ``best.ckpt``,
``.hydra/overrides.yaml``). Runs that differ only in ``seed`` form a variant.
With ``predict=True`` every run's checkpoint predicts the genome (bigWigs in
``<run>/predictions``, reused when already there) and is scored from those
files on the validation and test chromosomes, exactly like the pipeline's
evaluate step; otherwise only the window-level validation score of training is
reported. Variants with several seeds also get a seed ensemble: the mean of
their runs' per-base predictions, written as bigWigs under
``<sweep>/ensembles/<variant>/`` and scored the same way.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from seq_unet.errors import InputError
from seq_unet.io.bigwig_write import DEFAULT_PRECISION
from seq_unet.io.names import bigwig

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


def variant_labels(overrides: list[list[str]]) -> list[tuple[str, int | None]]:
    """Per run: a variant label (the overrides that differ between runs, seed excluded) and the seed."""
    parsed, seeds = [], []
    for ovs in overrides:
        d, seed = {}, None
        for o in ovs:
            key, _, value = o.partition("=")
            if key.lstrip("+~") == "seed":
                seed = int(value)
            elif not key.startswith("hydra."):
                d[key] = value
        parsed.append(d)
        seeds.append(seed)
    keys = list(dict.fromkeys(k for d in parsed for k in d))
    varying = [k for k in keys if len({d.get(k) for d in parsed}) > 1]
    labels = [" ".join(f"{k}={d[k]}" for k in varying if k in d) or "(defaults)" for d in parsed]
    return list(zip(labels, seeds))


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

    runs = find_runs(sweep_dir)
    rows, predicted = [], {}
    for run, (variant, seed) in zip(runs, variant_labels([run_overrides(r) for r in runs])):
        summary = json.loads((run / "train_summary.json").read_text())
        rows.append({"run": str(run), "variant": variant, "seed": seed, "parameters": summary.get("parameters"),
                     "epochs": summary.get("epochs"), "train_seconds": summary.get("train_seconds"),
                     "window_val_pearson": summary.get("best_val_pearson"), "checkpoint": str(run / "best.ckpt")})
        if predict:
            predicted[str(run)] = _predict_run(run, fasta, list(observed), predict_kwargs or {})
    table = pd.DataFrame(rows)
    ens = None
    if predict:
        ensembles = {}
        for variant, group in table.groupby("variant", sort=False):
            if len(group) > 1:
                slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", variant)
                ensembles[variant] = write_ensemble([predicted[r] for r in group.run],
                                                    Path(sweep_dir) / "ensembles" / slug, chrom_sizes,
                                                    (predict_kwargs or {}).get("precision", DEFAULT_PRECISION))
        # one pass over the measured tracks scores every run and every ensemble
        scores = evaluate({**{f"run:{k}": v for k, v in predicted.items()},
                           **{f"ensemble:{k}": v for k, v in ensembles.items()}},
                          observed, chrom_sizes, split_of, [resolution])
        table = pd.concat([table, pd.DataFrame([_scores(scores, f"run:{r}", per_chrom=True) for r in table.run])],
                          axis=1)
        ens = {v: {f"ensemble_{k}": x for k, x in _scores(scores, f"ensemble:{v}").items()} for v in ensembles}
    variants = variant_table(table)
    if ens is not None:
        variants = pd.concat([variants, pd.DataFrame([ens.get(v, {}) for v in variants.variant],
                                                     index=variants.index)], axis=1)
    for r in table.to_dict("records"):
        log.info("%s  %s seed=%s  %s", r["run"], r["variant"], r["seed"],
                 " ".join(f"{k}={v:.3f}" for k, v in r.items() if "pearson" in k and v is not None))
    key = "val_pearson" if predict else "window_val_pearson"
    table = table.sort_values(key, ascending=False, kind="stable").reset_index(drop=True)
    return table, variants


def _scores(df: pd.DataFrame, predictor: str, per_chrom: bool = False) -> dict[str, float]:
    """One predictor's validation Pearson (mean over tracks) and test Pearson per track (and chromosome)."""
    d = df[df.predictor == predictor]
    pooled = d[d.chrom == "all"]
    val = pooled[pooled.split == "val"]
    out = {"val_pearson": float(val.pearson.mean()) if len(val) else float("nan")}
    for r in pooled[pooled.split == "test"].itertuples():
        out[f"test_pearson_{r.track}"] = r.pearson
    if per_chrom:
        for r in d[(d.split == "test") & (d.chrom != "all")].itertuples():
            out[f"test_pearson_{r.track}_{r.chrom}"] = r.pearson
    return out


def write_ensemble(members: list[dict[str, Path]], out_dir: Path, chrom_sizes: dict[str, int],
                   precision: float) -> dict[str, Path]:
    """Per track, the per-base mean of several runs' prediction bigWigs, written to ``out_dir/<track>.bw``."""
    from seq_unet.io.bigwig_read import open_bigwig, read_values
    from seq_unet.io.bigwig_write import BigWigWriter

    out = {}
    for track in members[0]:
        path = Path(out_dir) / bigwig(track)
        handles = [open_bigwig(m[track]) for m in members]
        try:
            with BigWigWriter(path, chrom_sizes, precision) as writer:
                for chrom, size in chrom_sizes.items():
                    writer.add(chrom, np.mean([read_values(h, chrom, 0, size, size) for h in handles], axis=0))
        finally:
            for h in handles:
                h.close()
        out[track] = path
    return out


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
    from seq_unet.predict.genome import predict_genome

    out = run / "predictions"
    paths = {t: out / bigwig(t) for t in tracks}
    if all(p.exists() for p in paths.values()):  # written atomically: present means complete
        return paths
    written = predict_genome(run / "best.ckpt", fasta, out, **kwargs)
    missing = set(tracks) - set(written)
    if missing:
        raise InputError(f"checkpoint {run / 'best.ckpt'} does not predict tracks {sorted(missing)}")
    return {t: written[t] for t in tracks}


def markdown(variants: pd.DataFrame, tracks: list[str]) -> str:
    """The variant table as Markdown (held-out Pearson mean ± sd per track)."""
    cols = (["variant", "runs", "parameters", "train min"] + [f"test r {t}" for t in tracks] + ["val r"]
            + [f"ensemble test r {t}" for t in tracks] + ["ensemble val r"])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in variants.to_dict("records"):
        cells = [r["variant"], str(r["runs"]), f"{r['parameters']:,}", f"{r['train_minutes_mean']:.1f}"]
        for name in [f"test_pearson_{t}" for t in tracks] + ["val_pearson"]:
            m, s = r.get(f"{name}_mean"), r.get(f"{name}_sd")
            cells.append("n/a" if m is None else f"{m:.3f} ± {s:.3f}")
        for name in [f"ensemble_test_pearson_{t}" for t in tracks] + ["ensemble_val_pearson"]:
            v = r.get(name)
            cells.append("n/a" if v is None or v != v else f"{v:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

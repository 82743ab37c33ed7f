"""sweep-summary: runs of a multirun scored from their predicted bigWigs, variants and seed ensembles."""

from __future__ import annotations

import json

import numpy as np
import pybigtools
import pytorch_lightning as pl
import torch
import yaml

from seq_unet.evaluate.sweep import summarise, variant_labels
from seq_unet.lit import SeqUNetModule
from tests.conf_values import linear_model, train_options


def test_variant_labels_keep_only_what_differs():
    labels = variant_labels([["model.skip=add", "trainer.max_epochs=3", "seed=0"],
                             ["model.skip=add", "trainer.max_epochs=3", "seed=1"],
                             ["model.skip=none", "trainer.max_epochs=3", "seed=0", "hydra.sweep.dir=x"]])
    assert labels == [("model.skip=add", 0), ("model.skip=add", 1), ("model.skip=none", 0)]
    assert variant_labels([["seed=4"]]) == [("(defaults)", 4)]


def _fake_run(run, skip: str, seed: int, window: int = 2048) -> None:
    """A finished run folder as `seq-unet train -m` leaves it (untrained weights; max-pooling, whose untrained
    network varies along the genome even without skips, so that every run has a Pearson)."""
    torch.manual_seed(seed)
    model = linear_model(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=1, skip=skip, dropout=0.0,
                       down="maxpool")
    m = SeqUNetModule(tracks=["gc", "noisy"], window_length=window, target_resolution=100, target_mean=[0.5, 2.5],
                      target_std=[0.1, 0.1], model=model, **train_options())
    (run / ".hydra").mkdir(parents=True)
    torch.save({"state_dict": m.state_dict(), "hyper_parameters": dict(m.hparams),
                "pytorch-lightning_version": pl.__version__}, run / "best.ckpt")
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model.skip={skip}", f"seed={seed}"]))
    (run / "train_summary.json").write_text(json.dumps(
        {"best_val_pearson": 0.1 * seed, "epochs": 2, "train_seconds": 60.0 + seed,
         "parameters": sum(p.numel() for p in m.parameters())}))


def test_summary_scores_runs_variants_and_ensembles(tiny_genome, tiny_prepared, tmp_path):
    sweep = tmp_path / "sweep"
    for i, (skip, seed) in enumerate([("concat", 0), ("concat", 1), ("none", 0)]):
        _fake_run(sweep / str(i), skip, seed)
    sizes = tiny_genome["sizes"]
    split_of = {"chrA": "train", "chrB": "test", "chrC": "val", "chrD": "train"}
    runs, variants = summarise(sweep, {k: str(v) for k, v in tiny_genome["tracks"].items()}, sizes, split_of,
                               tiny_prepared, resolution=1000, predict=True,
                               predict_kwargs={"device": "cpu", "precision": 1e-4})
    assert len(runs) == 3 and list(runs.val_pearson) == sorted(runs.val_pearson, reverse=True)
    assert {"test_pearson_gc", "test_pearson_noisy", "test_pearson_gc_chrB"} <= set(runs.columns)
    assert all((sweep / str(i) / "predictions" / "gc.bw").exists() for i in range(3))
    assert list(variants.variant) == ["model.skip=concat", "model.skip=none"]
    concat = variants.set_index("variant").loc["model.skip=concat"]
    assert concat.runs == 2 and np.isclose(concat.train_minutes_mean, 60.5 / 60)
    r = runs.set_index("run").test_pearson_gc
    assert np.isclose(concat.test_pearson_gc_mean, np.mean([r[str(sweep / "0")], r[str(sweep / "1")]]))
    assert np.isclose(concat.test_pearson_gc_sd, np.std([r[str(sweep / "0")], r[str(sweep / "1")]], ddof=1))
    # the seed ensemble is the per-base mean of the two runs' predictions
    ens = pybigtools.open(str(sweep / "ensembles" / "model.skip=concat" / "gc.bw"))
    members = [pybigtools.open(str(sweep / str(i) / "predictions" / "gc.bw")) for i in (0, 1)]
    for chrom, n in sizes.items():
        want = np.mean([np.asarray(b.values(chrom, 0, n, fillna=None)) for b in members], axis=0)
        np.testing.assert_allclose(np.asarray(ens.values(chrom, 0, n, fillna=None)), want, atol=1.5e-4)
    assert np.isfinite(concat.ensemble_test_pearson_gc)
    assert np.isnan(variants.set_index("variant").loc["model.skip=none"].get("ensemble_test_pearson_gc", np.nan))

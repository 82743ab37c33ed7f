"""Binning and scoring of predictions against measurements."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seq_unet.evaluate.baseline import _canonical_index, bin_features
from seq_unet.evaluate.metrics import bin_pair, evaluate, score
from seq_unet.io.bases import encode
from seq_unet.io.bigwig_write import write_bigwig


def test_bin_pair_known():
    obs = np.array([1, 1, np.nan, np.nan, 3, 3, 3, np.nan, 5], dtype=float)
    pred = np.array([2, 4, 9, 9, 1, 1, 1, 7, 0], dtype=float)
    p, o = bin_pair(pred, obs, 3)
    # bins of 3: [1, 1, nan] -> obs 1, pred 3; [nan, 3, 3] -> obs 3, pred 1;
    # [3, nan, 5] -> obs 4, pred 0.5 (prediction averaged over measured bases only)
    np.testing.assert_allclose(o, [1.0, 3.0, 4.0])
    np.testing.assert_allclose(p, [3.0, 1.0, 0.5])
    # a bin with fewer than half its bases measured is dropped
    p, o = bin_pair(pred[:6], np.array([1, np.nan, np.nan, 3, 3, 3.0]), 3)
    np.testing.assert_allclose(o, [3.0])


def test_score_known():
    s = score(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0, 8.0]))
    assert s["pearson"] == pytest.approx(1.0) and s["spearman"] == pytest.approx(1.0)
    assert s["mse"] == pytest.approx((1 + 4 + 9 + 16) / 4) and s["n_bins"] == 4
    s = score(np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0]))
    assert s["pearson"] == pytest.approx(-1.0)
    assert np.isnan(score(np.ones(5), np.arange(5.0))["pearson"])


def test_evaluate_from_bigwigs(tmp_path):
    sizes = {"a": 5000, "b": 3000}
    rng = np.random.default_rng(0)
    truth = {c: np.repeat(rng.normal(size=n // 100), 100).astype(np.float32) for c, n in sizes.items()}
    write_bigwig(tmp_path / "obs.bw", sizes, truth.items(), precision=0)
    write_bigwig(tmp_path / "perfect.bw", sizes, truth.items(), precision=0)
    write_bigwig(tmp_path / "neg.bw", sizes, ((c, -v) for c, v in truth.items()), precision=0)
    df = evaluate({"perfect": {"t": str(tmp_path / "perfect.bw")}, "neg": {"t": str(tmp_path / "neg.bw")}},
                  {"t": str(tmp_path / "obs.bw")}, sizes, {"a": "train", "b": "test"}, [100, 500])
    assert list(df.columns) == ["predictor", "track", "split", "chrom", "resolution_bp", "pearson", "spearman",
                                "mse", "n_bins"]
    row = df[(df.predictor == "perfect") & (df.chrom == "b") & (df.resolution_bp == 100)].iloc[0]
    assert row.pearson == pytest.approx(1.0) and row.mse == pytest.approx(0.0) and row.n_bins == 30
    pooled = df[(df.predictor == "neg") & (df.chrom == "all") & (df.split == "train") & (df.resolution_bp == 500)]
    assert pooled.iloc[0].pearson == pytest.approx(-1.0) and pooled.iloc[0].n_bins == 10


def test_kmer_features_known():
    assert _canonical_index().max() + 1 == 136  # canonical 4-mers
    gc, freq = bin_features(encode("AAAAAAAA" + "GCGCNNNN"), 8)
    np.testing.assert_allclose(gc, [0.0, 1.0])
    # bin 0 holds k-mers starting in it: AAAA x5 plus AAAG, AAGC, AGCG
    assert freq[0].max() == pytest.approx(5 / 8)


def test_evaluate_in_pieces_equals_whole_chromosomes(tmp_path):
    """Reading in pieces of whole bins gives the same rows as whole chromosomes at once, exactly."""
    sizes = {"a": 10_050, "b": 7_000, "c": 0}
    rng = np.random.default_rng(4)
    obs = {c: rng.normal(size=n).astype(np.float32) for c, n in sizes.items()}
    obs["a"][2000:2600] = np.nan
    pred = {c: (v + rng.normal(size=len(v))).astype(np.float32) for c, v in obs.items()}
    write_bigwig(tmp_path / "obs.bw", sizes, obs.items(), precision=0)
    write_bigwig(tmp_path / "pred.bw", sizes, pred.items(), precision=0)
    args = ({"m": {"t": str(tmp_path / "pred.bw")}}, {"t": str(tmp_path / "obs.bw")}, sizes,
            {"a": "test", "b": "test", "c": "train"}, [100, 250])
    whole = evaluate(*args, chunk=1 << 30)
    for chunk in (500, 1_000, 3_000):  # pieces of 500, 1000 and 3000 bases: whole bins of 100 and 250
        pd.testing.assert_frame_equal(evaluate(*args, chunk=chunk), whole, check_exact=True)
    assert (whole[(whole.chrom == "all") & (whole.split == "test")].n_bins > 0).all()

"""The baselines' streamed fit against direct fits on whole matrices (known answers)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from seq_unet.evaluate.baseline import Moments, _accumulate, _design, bin_features, chrom_features
from seq_unet.io.fasta import prepare_fasta
from seq_unet.io.genome import Genome

from .conftest import random_sequence, write_fasta


def _blocks(X, y, sizes):
    """Rows of ``X``/``y`` in consecutive blocks of ``sizes`` (the chromosomes of a stream)."""
    edges = np.cumsum([0, *sizes])
    return [(X[a:b], y[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def test_streamed_ridge_equals_a_fit_on_the_whole_matrix():
    rng = np.random.default_rng(1)
    n, p = 900, 12
    # columns like k-mer frequencies: a large common mean and a small spread (cancellation-prone)
    X = 0.01 + 0.002 * rng.normal(size=(n, p))
    w = rng.normal(size=p)
    y = 1.5 + X @ w * 50 + 0.1 * rng.normal(size=n)
    m = Moments(p)
    for Xb, yb in _blocks(X, y, [1, 300, 0, 450, 149]):
        m.add(Xb, yb)
    assert m.n == n
    for alpha in (0.0, 0.01, 1.0, 100.0):
        coef, intercept = m.ridge(alpha)
        # the closed form on the whole matrix: (Xc'Xc + alpha I) b = Xc'yc, intercept = mean(y) - mean(X) b
        Xc, yc = X - X.mean(0), y - y.mean()
        direct = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(p), Xc.T @ yc)
        np.testing.assert_allclose(coef, direct, rtol=1e-9, atol=1e-12)
        assert intercept == pytest.approx(y.mean() - X.mean(0) @ direct, rel=1e-12, abs=1e-12)
        if alpha > 0:
            sk = Ridge(alpha=alpha).fit(X, y)
            np.testing.assert_allclose(coef, sk.coef_, rtol=1e-9, atol=1e-12)
            assert intercept == pytest.approx(sk.intercept_, rel=1e-12)
    # one column with alpha 0 is the straight line of np.polyfit
    g = Moments(1)
    for Xb, yb in _blocks(X[:, :1], y, [500, 400]):
        g.add(Xb, yb)
    slope, intercept = np.polyfit(X[:, 0], y, 1)
    (b,), a = g.ridge(0.0)
    assert b == pytest.approx(slope, rel=1e-10) and a == pytest.approx(intercept, rel=1e-10)


def test_streamed_pearson_of_predictions():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 5)) + 3.0
    y = X @ np.arange(5.0) + rng.normal(size=200)
    m = Moments(5)
    for Xb, yb in _blocks(X, y, [70, 130]):
        m.add(Xb, yb)
    coef = rng.normal(size=5)
    assert m.pearson(coef) == pytest.approx(np.corrcoef(X @ coef + 7.0, y)[0, 1], rel=1e-12)
    # y = 2x + 1 exactly: r = 1
    line = Moments(1)
    line.add(np.array([[0.0], [1.0]]), np.array([1.0, 3.0]))
    line.add(np.array([[2.0], [5.0]]), np.array([5.0, 11.0]))
    assert line.pearson(np.array([1.0])) == pytest.approx(1.0)
    assert line.ridge(0.0)[0][0] == pytest.approx(2.0) and line.ridge(0.0)[1] == pytest.approx(1.0)


def test_chromosome_features_in_pieces_equal_the_whole(tmp_path):
    rng = np.random.default_rng(3)
    seq = random_sequence(rng, 10_007)
    seq = seq[:3000] + "N" * 700 + seq[3700:]
    fasta = str(tmp_path / "g.fa")
    prepare_fasta(str(write_fasta(tmp_path / "in.fa", {"c": seq})), fasta)
    genome = Genome(fasta)
    whole = bin_features(genome.codes("c", 0, len(seq)), 100)
    for chunk in (100, 350, 1000, 20_000):  # a k-mer across a piece's end is counted once, in its bin
        pieces = chrom_features(genome, "c", 100, chunk)
        np.testing.assert_array_equal(pieces[0], whole[0])
        np.testing.assert_array_equal(pieces[1], whole[1])


def test_the_streamed_fit_equals_ridge_on_the_stacked_chromosomes(tiny_genome, tiny_prepared, tmp_path):
    """Statistics added chromosome by chromosome give scikit-learn's Ridge and np.polyfit on the stacked
    training bins (the fit as it was made on whole-genome matrices), and fit_baselines writes its predictions."""
    from seq_unet.evaluate.baseline import _fit, _targets, fit_baselines
    from seq_unet.io.bigwig_read import open_bigwig, read_values

    genome = Genome(str(tiny_prepared))
    split_of = {"chrA": "train", "chrB": "train", "chrC": "val", "chrD": "test"}
    tracks = {t: str(p) for t, p in tiny_genome["tracks"].items()}
    stats = _accumulate(genome, tracks, split_of, 200)
    for t, path in tracks.items():
        bw = open_bigwig(path)
        rows = {c: (chrom_features(genome, c, 200), _targets(bw, c, n, 200)) for c, n in genome.sizes.items()}
        bw.close()
        train = [rows[c] for c in ("chrA", "chrB")]
        g = np.concatenate([f[0] for f, _ in train])
        X = np.vstack([_design(f[1]) for f, _ in train])
        y = np.concatenate([v for _, v in train])
        ok = np.isfinite(y)
        sk = Ridge(alpha=1.0).fit(X[ok], y[ok])
        coef, intercept = stats[t]["train"].ridge(1.0)
        np.testing.assert_allclose(coef, sk.coef_, rtol=1e-7, atol=1e-9 * np.abs(sk.coef_).max())
        assert intercept == pytest.approx(sk.intercept_, rel=1e-9)
        slope, icpt = np.polyfit(g[ok], y[ok], 1)
        fits = _fit(t, stats[t], (1.0,))
        assert fits["gc"][0][0] == pytest.approx(slope, rel=1e-9) and fits["gc"][1] == pytest.approx(icpt, rel=1e-9)
    written = fit_baselines(str(tiny_prepared), tracks, split_of, tmp_path, 200, alphas=(1.0,))
    gc = chrom_features(genome, "chrD", 200)[0]
    bw = open_bigwig(written["gc"]["gc"])
    got = read_values(bw, "chrD", 0, 3000, 3000)
    bw.close()
    want = np.repeat(stats["gc"]["gc"].ridge(0.0)[1] + stats["gc"]["gc"].ridge(0.0)[0][0] * gc, 200)[:3000]
    np.testing.assert_allclose(got, want, atol=6e-5)


def test_too_few_training_bins_names_the_track(tiny_prepared, tiny_genome):
    from seq_unet.errors import InputError
    from seq_unet.evaluate.baseline import _fit

    genome = Genome(str(tiny_prepared))
    split_of = {"chrA": "test", "chrB": "test", "chrC": "val", "chrD": "train"}
    stats = _accumulate(genome, {"gc": str(tiny_genome["tracks"]["gc"])}, split_of, 1000)
    with pytest.raises(InputError, match="track 'gc' has too few measured bins"):
        _fit("gc", stats["gc"], (1.0,))

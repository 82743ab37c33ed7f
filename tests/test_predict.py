"""Genome-wide prediction: both alignment modes, chromosome ends, Monte Carlo dropout."""

from __future__ import annotations

import numpy as np
import pybigtools
import pytest
import pytorch_lightning as pl
import torch

from seq_unet.io.genome import Genome
from seq_unet.lit import SeqUNetModule
from seq_unet.model.unet import geometry_from_config
from seq_unet.predict.forward import load_model, predict_batch
from seq_unet.predict.genome import predict_genome
from seq_unet.predict.tiling import plan_windows
from tests.conf_values import linear_model, train_options
from tests.conftest import random_sequence, write_fasta

MODEL = linear_model(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=2)


def _module(padding: str, dropout: float, window: int = 2048) -> SeqUNetModule:
    torch.manual_seed(0)
    window = geometry_from_config({**MODEL, "padding": padding}).nearest_valid_lengths(window)[1]
    return SeqUNetModule(tracks=["a", "b"], window_length=window, target_resolution=100, target_mean=[1.0, 2.0],
                         target_std=[0.5, 0.25], model={**MODEL, "padding": padding, "dropout": dropout},
                         **train_options())


def _save(module: SeqUNetModule, path) -> str:
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": pl.__version__}, path)
    return str(path)


def _read(path, sizes) -> dict[str, np.ndarray]:
    bw = pybigtools.open(str(path))
    try:
        return {c: np.asarray(bw.values(c, 0, n, fillna=None)) for c, n in sizes.items()}
    finally:
        bw.close()


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_every_base_is_predicted_from_the_right_window(padding, tiny_prepared, tmp_path):
    module = _module(padding, dropout=0.0)
    ckpt = _save(module, tmp_path / "m.ckpt")
    paths = predict_genome(ckpt, tiny_prepared, tmp_path / "out", batch_size=3, precision=1e-4, device="cpu",
                           blend=0)
    genome = Genome(tiny_prepared)
    got = _read(paths["a"], genome.sizes)
    model = load_model(ckpt, torch.device("cpu"))
    length = module.hparams.window_length
    off = model.net.geometry.offset(length)
    assert (off > 0) == (padding == "valid")
    width = module.hparams.target_resolution + 1  # smooth="auto": the training resolution, made odd
    crop = max(length // 8, off + width // 2)
    for chrom, size in genome.sizes.items():  # chrD (3 kb) is shorter than one window
        assert got[chrom].shape == (size,) and np.isfinite(got[chrom]).all(), chrom
        # every window's kept part equals that window's own prediction, ends included
        for p in plan_windows(size + 2 * off, length, crop):
            codes = genome.codes(chrom, p.start - off, p.start - off + length)[None]
            inside = np.clip([[off - p.start, off + size - p.start]], 0, length)
            direct = predict_batch(model, codes, torch.device("cpu"), smooth=width, inside=inside)[0][0, 0]
            lo, hi = max(p.keep_from, off), min(p.keep_to, off + size)
            np.testing.assert_allclose(got[chrom][lo - off : hi - off], direct[lo - p.start : hi - p.start],
                                       atol=6e-5, err_msg=f"{chrom} window {p}")


def test_monte_carlo_dropout_writes_mean_and_std(tiny_prepared, tmp_path):
    ckpt = _save(_module("same", dropout=0.1), tmp_path / "m.ckpt")
    plain = predict_genome(ckpt, tiny_prepared, tmp_path / "plain", precision=1e-4, device="cpu")
    mc = predict_genome(ckpt, tiny_prepared, tmp_path / "mc", precision=1e-4, device="cpu", mc_samples=4)
    assert set(mc) == {"a", "b", "a.std", "b.std"} and all(p.exists() for p in mc.values())
    again = predict_genome(ckpt, tiny_prepared, tmp_path / "mc2", precision=1e-4, device="cpu", mc_samples=4)
    for name in mc:  # the dropout masks are seeded: the same call writes the same values
        assert mc[name].read_bytes() == again[name].read_bytes(), name
    assert mc["a.std"].name == "a.std.bw" and mc["a.std"].parent == mc["a"].parent
    sizes = Genome(tiny_prepared).sizes
    for t in ("a", "b"):
        mean, sd, det = (np.concatenate(list(_read(p, sizes).values())) for p in (mc[t], mc[f"{t}.std"], plain[t]))
        assert np.isfinite(sd).all() and (sd >= 0).all() and np.median(sd) > 0
        assert not np.allclose(mean, det)  # dropout was active
        assert np.corrcoef(mean, det)[0, 1] > 0.5  # but the mean still follows the deterministic prediction


def test_monte_carlo_without_dropout_has_zero_spread(tiny_prepared, tmp_path):
    ckpt = _save(_module("same", dropout=0.0), tmp_path / "m.ckpt")
    plain = predict_genome(ckpt, tiny_prepared, tmp_path / "plain", precision=1e-4, device="cpu")
    mc = predict_genome(ckpt, tiny_prepared, tmp_path / "mc", precision=1e-4, device="cpu", mc_samples=3)
    sizes = Genome(tiny_prepared).sizes
    np.testing.assert_array_equal(np.concatenate(list(_read(mc["a.std"], sizes).values())), 0.0)
    np.testing.assert_allclose(np.concatenate(list(_read(mc["a"], sizes).values())),
                               np.concatenate(list(_read(plain["a"], sizes).values())), atol=1e-4)


def test_valid_padding_loss_uses_the_bins_inside_the_output():
    module = _module("valid", dropout=0.0, window=4096)
    length, r = module.hparams.window_length, module.hparams.target_resolution
    off = module.net.geometry.offset(length)
    assert module.bin_from == -(-off // r) and module.bin_to == (length - off) // r
    n_bins = length // r
    batch = {"x": torch.randn(2, 4, length), "y": torch.randn(2, 2, n_bins),
             "mask": torch.ones(2, 2, n_bins, dtype=bool)}
    loss, pooled = module._loss(batch)
    assert torch.isfinite(loss) and pooled.shape == (2, 2, module.bin_to - module.bin_from)
    # the pooled bins are the output averaged over exactly the bins' bases
    out = module(batch["x"])
    first = out[..., module.bin_from * r - off : module.bin_from * r - off + r].mean(-1)
    torch.testing.assert_close(pooled[..., 0], first)
    with pytest.raises(ValueError, match="less than one 100-bp target bin"):
        model = {**MODEL, "padding": "valid", "bottleneck_blocks": 6}
        SeqUNetModule(["a"], geometry_from_config(model).nearest_valid_lengths(1)[1], 100, [0.0], [1.0], model=model,
                      **train_options())


def test_sd_tracks_are_rounded_ten_times_finer(tiny_prepared, tmp_path):
    """sd values are small: with precision 0.01 the mean is stored in steps of 0.01, the sd in steps of 0.001."""
    ckpt = _save(_module("same", dropout=0.3), tmp_path / "m.ckpt")
    mc = predict_genome(ckpt, tiny_prepared, tmp_path / "mc", precision=0.01, device="cpu", mc_samples=3, smooth=0)
    sizes = Genome(tiny_prepared).sizes
    mean, sd = (np.concatenate(list(_read(mc[n], sizes).values())) for n in ("a", "a.std"))
    np.testing.assert_allclose(mean / 0.01, np.round(mean / 0.01), atol=1e-3)
    np.testing.assert_allclose(sd / 0.001, np.round(sd / 0.001), atol=1e-3)
    assert np.abs(sd / 0.01 - np.round(sd / 0.01)).max() > 0.05  # finer than the mean's step


def test_uncertainty_does_not_step_at_window_seams_when_windows_cross_fade(tiny_prepared, tmp_path):
    """Each window estimates its own Monte Carlo spread; with hard cuts the sd track steps where one
    window's kept part ends and the next one's begins, with a cross-fade it ramps."""
    ckpt = _save(_module("same", dropout=0.3), tmp_path / "m.ckpt")
    sizes = Genome(tiny_prepared).sizes
    length = _module("same", 0.3).hparams.window_length
    jumps = {}
    for blend in (0, 512):
        out = predict_genome(ckpt, tiny_prepared, tmp_path / f"b{blend}", precision=1e-5, std_precision=1e-6,
                             device="cpu", mc_samples=3, blend=blend)
        sd = _read(out["a.std"], sizes)["chrA"]
        from seq_unet.predict.genome import window_crop
        crop = window_crop(load_model(ckpt, torch.device("cpu")), length, 101, None, blend)
        seams = [p.keep_to for p in plan_windows(sizes["chrA"], length, crop, blend)[:-1]]
        # the change across each seam, against the typical change from one base to the next
        typical = np.median(np.abs(np.diff(sd)))
        jumps[blend] = max(abs(sd[s] - sd[s - 1]) for s in seams) / typical
    assert jumps[0] > 10 and jumps[512] < 5, jumps  # hard cuts step; cross-fades change like any base


def test_an_ensemble_predicts_the_mean_of_its_members_and_their_spread(tiny_prepared, tmp_path):
    members = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        m = SeqUNetModule(tracks=["a", "b"], window_length=_module("same", 0.0).hparams.window_length,
                          target_resolution=100, target_mean=[1.0, 2.0], target_std=[0.5, 0.25],
                          model={**MODEL, "padding": "same", "dropout": 0.0}, **train_options())
        members.append(_save(m, tmp_path / f"m{seed}.ckpt"))
    singles = [predict_genome(c, tiny_prepared, tmp_path / f"one{i}", precision=1e-5, device="cpu")
               for i, c in enumerate(members)]
    both = predict_genome(members, tiny_prepared, tmp_path / "both", precision=1e-5, std_precision=1e-6,
                          device="cpu")
    assert set(both) == {"a", "b", "a.std", "b.std"}
    sizes = Genome(tiny_prepared).sizes
    for t in ("a", "b"):
        one, two = (np.concatenate(list(_read(s[t], sizes).values())) for s in singles)
        mean = np.concatenate(list(_read(both[t], sizes).values()))
        sd = np.concatenate(list(_read(both[f"{t}.std"], sizes).values()))
        np.testing.assert_allclose(mean, (one + two) / 2, atol=2e-5)
        # the sample sd of two values is |x - y| / sqrt(2)
        np.testing.assert_allclose(sd, np.abs(one - two) / np.sqrt(2), atol=3e-5)
    bad = SeqUNetModule(tracks=["x"], window_length=_module("same", 0.0).hparams.window_length, target_resolution=100,
                        target_mean=[0.0], target_std=[1.0], model={**MODEL, "padding": "same"}, **train_options())
    with pytest.raises(Exception, match="ensemble members differ"):
        predict_genome([members[0], _save(bad, tmp_path / "bad.ckpt")], tiny_prepared, tmp_path / "bad", device="cpu")


def _contig_genome(path, n: int = 300, seed: int = 3) -> dict[str, str]:
    """A chromosome longer than the window, then ``n`` contigs of 1-50 kb (a 1-bp and a 100-bp one among
    them; every tenth with a run of N; one all N)."""
    rng = np.random.default_rng(seed)
    sizes = [1, 100, *rng.integers(1000, 50_001, n - 2)]
    seqs = {"chr1": random_sequence(rng, 150_000)}
    for i, size in enumerate(sizes):
        s = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, size)]
        if i % 10 == 5:
            s[size // 3 : size // 3 + size // 5] = ord("N")
        seqs[f"chrUn_{i}"] = "N" * int(size) if i == 7 else s.tobytes().decode()
    write_fasta(path, seqs)
    return seqs


def _counted_forward(monkeypatch) -> list[int]:
    """Windows per forward pass of genome-wide prediction, as they happen."""
    import seq_unet.predict.chromosomes as chromosomes

    calls, inner = [], chromosomes.predict_batch

    def counted(model, codes, *args, **kwargs):
        calls.append(len(codes))
        return inner(model, codes, *args, **kwargs)

    monkeypatch.setattr(chromosomes, "predict_batch", counted)
    return calls


def test_small_contigs_share_batches_and_every_base_is_written(tmp_path, monkeypatch):
    """300 contigs of 1-50 kb, each shorter than the 65-kb window: batch_size of them per forward pass,
    every base of every contig written (no value only where the sequence is N), and each contig's values
    those it has when predicted alone."""
    import pyBigWig

    from seq_unet.io.fasta import prepare_fasta

    seqs = _contig_genome(tmp_path / "raw.fa")
    fasta = tmp_path / "genome.fa"
    prepare_fasta(tmp_path / "raw.fa", fasta)
    ckpt = _save(_module("valid", dropout=0.0, window=65536), tmp_path / "m.ckpt")
    calls = _counted_forward(monkeypatch)
    kw = dict(precision=1e-3, device="cpu", mask_unknown=True, reverse_complement=False)
    paths = predict_genome(ckpt, fasta, tmp_path / "all", batch_size=8, **kw)
    # chr1 (150 kb) has 3 windows, one pass; the 300 contigs fill ceil(300 / 8) passes
    assert len(calls) == 1 + 38 and sum(calls) == 3 + 300 and max(calls) == 8
    for name in ("a", "b"):
        bw = pyBigWig.open(str(paths[name]))
        assert bw.chroms() == {c: len(s) for c, s in seqs.items()}
        for chrom, seq in seqs.items():
            covered = np.zeros(len(seq), bool)
            for lo, hi, _ in bw.intervals(chrom) or []:
                covered[lo:hi] = True
            known = np.frombuffer(seq.encode(), np.uint8) != ord("N")
            np.testing.assert_array_equal(covered, known, err_msg=f"{name} {chrom}")
        bw.close()
    # a few contigs alone in their batches (batch_size 1): the same values
    few = ["chrUn_0", "chrUn_1", "chrUn_15", "chrUn_299"]
    write_fasta(tmp_path / "few.fa", {c: seqs[c] for c in few})
    alone = predict_genome(ckpt, tmp_path / "few.fa", tmp_path / "alone", batch_size=1, **kw)
    sizes = {c: len(seqs[c]) for c in few}
    for name in ("a", "b"):
        got, ref = _read(paths[name], sizes), _read(alone[name], sizes)
        for c in few:
            # equal, but for a value that lies on a rounding boundary
            np.testing.assert_allclose(got[c], ref[c], atol=1.01e-3, rtol=0, equal_nan=True, err_msg=f"{name} {c}")
            assert np.mean((got[c] == ref[c]) | np.isnan(ref[c])) > 0.99


def test_long_chromosomes_are_stitched_and_written_in_segments(tiny_prepared, tmp_path, monkeypatch):
    """With segments of one batch each, every chromosome longer than a window is written part by part, the
    cross-fades between segments carried over, and the values are those of whole chromosomes (Monte Carlo
    masks included: the seeds count batches over the whole chromosome)."""
    from seq_unet.io.bigwig_write import BigWigWriter
    from seq_unet.predict import chromosomes

    ckpt = _save(_module("same", dropout=0.2), tmp_path / "m.ckpt")
    kw = dict(device="cpu", batch_size=2, mc_samples=2, precision=1e-4, seed=3, mask_unknown=True)
    whole = predict_genome(ckpt, tiny_prepared, tmp_path / "whole", **kw)
    calls = []
    add_part = BigWigWriter.add_part
    monkeypatch.setattr(BigWigWriter, "add_part", lambda self, c, s, v: (calls.append((c, s)), add_part(self, c, s, v)))
    monkeypatch.setattr(chromosomes, "SEGMENT", 3000)  # shorter than one batch of windows: a segment per batch
    parts = predict_genome(ckpt, tiny_prepared, tmp_path / "parts", **kw)
    assert sum(c == "chrA" for c, _ in calls) > 10 * len(whole)  # 40 kb in segments of two 2-kb windows
    sizes = Genome(tiny_prepared).sizes
    for name in whole:
        got, ref = _read(parts[name], sizes), _read(whole[name], sizes)
        for c in sizes:
            np.testing.assert_array_equal(got[c], ref[c], err_msg=f"{name} {c}")
        assert np.isnan(got["chrA"][5000:5300]).all()  # the N run, masked across segments

"""Tiling and stitching against a model whose output is known exactly.

The model counts bases in a +-K window around each position (G+C for one
track, A for the other), a function of the local sequence alone, so the whole
chromosome can be computed in one piece with numpy. Counts are integers and
their averages halves, exact in float32, so the stitched genome-wide bigWig must
equal the untiled answer bit for bit: any seam, off-by-one at a window edge or
at a chromosome end, lost last window or wrong offset shows up as a difference.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pybigtools
import pytest
import torch

from seq_unet.io.fasta import prepare_fasta
from seq_unet.io.genome import Genome
from seq_unet.predict import forward
from seq_unet.predict.genome import predict_genome

K = 20  # half-width of the counted window
A, C, G, T = range(4)


class CountingNet(torch.nn.Module):
    """Counts G+C and A in ``[i - K, i + K]``; ``valid`` drops the K edge positions it cannot see."""

    def __init__(self, padding: str):
        super().__init__()
        self.padding = padding
        w = torch.zeros(2, 4, 2 * K + 1)
        w[0, [C, G]] = 1.0
        w[1, A] = 1.0
        self.register_buffer("w", w)
        self.geometry = SimpleNamespace(offset=lambda length: K if padding == "valid" else 0)

    def mc_dropout(self, enabled: bool) -> None:
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv1d(x, self.w, padding=K if self.padding == "same" else 0)


class CountingModule(torch.nn.Module):
    def __init__(self, padding: str, window: int, resolution: int):
        super().__init__()
        self.net = CountingNet(padding)
        self.hparams = SimpleNamespace(tracks=["gc", "a"], window_length=window, target_resolution=resolution)

    def predict_values(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def untiled(codes: np.ndarray, width: int, reverse_complement: bool) -> np.ndarray:
    """The known answer on a whole chromosome ``(2, n)``: counts, strand average, running mean."""
    n = len(codes)
    window = np.ones(2 * K + 1)
    gc = np.convolve(np.isin(codes, [C, G]).astype(float), window)[K : K + n]
    a = np.convolve((codes == A).astype(float), window)[K : K + n]
    if reverse_complement:  # the reverse strand's A are this strand's T
        a = (a + np.convolve((codes == T).astype(float), window)[K : K + n]) / 2
    out = np.stack([gc, a])
    if width > 1:
        c = np.concatenate([np.zeros((2, 1)), np.cumsum(out, axis=1)], axis=1)
        i = np.arange(n)
        lo, hi = np.clip(i - width // 2, 0, n), np.clip(i + width // 2 + 1, 0, n)
        out = (c[:, hi] - c[:, lo]) / (hi - lo)
    return out


@pytest.fixture(scope="module")
def genome_fa(tmp_path_factory) -> str:
    rng = np.random.default_rng(11)
    window = 1000
    sizes = {"long": 7 * window + 333, "short": 437, "exact": window, "plus_one": window + 1}
    src = tmp_path_factory.mktemp("stitch") / "src.fa"
    with open(src, "w") as fh:
        for name, n in sizes.items():
            seq = rng.choice(list("ACGT"), n)
            seq[n // 3 : n // 3 + 57] = "N"  # unknown bases count as nothing
            fh.write(f">{name}\n" + "".join(seq) + "\n")
    out = src.parent / "genome.fa"
    prepare_fasta(src, out)
    return str(out)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("smooth", [0, 25])
@pytest.mark.parametrize("reverse_complement", [True, False])
@pytest.mark.parametrize("blend", [0, "auto"])
def test_stitched_equals_untiled(genome_fa, tmp_path, monkeypatch, padding, smooth, reverse_complement, blend):
    """Bit for bit with hard cuts; with cross-fades the weights of two windows sum to 1 within float32."""
    window = 1000
    module = CountingModule(padding, window, resolution=smooth or 1)
    monkeypatch.setattr(forward, "load_model", lambda ckpt, device: module)
    paths = predict_genome("unused.ckpt", genome_fa, tmp_path, batch_size=3, precision=0,
                           reverse_complement=reverse_complement, device="cpu", smooth="auto",
                           blend=blend)
    genome = Genome(genome_fa)
    for t, track in enumerate(["gc", "a"]):
        bw = pybigtools.open(str(paths[track]))
        assert list(bw.chroms().items()) == list(genome.sizes.items())
        for chrom, n in genome.sizes.items():
            want = untiled(genome.codes(chrom, 0, n), smooth + 1 - smooth % 2 if smooth else 1, reverse_complement)
            got = np.asarray(bw.values(chrom, 0, n, fillna=None), dtype=np.float64)
            if blend == 0:
                np.testing.assert_array_equal(got, want[t].astype(np.float32), err_msg=f"{track} {chrom}")
            else:
                np.testing.assert_allclose(got, want[t], rtol=0, atol=1e-5, err_msg=f"{track} {chrom}")
        bw.close()


def test_tiling_really_has_seams_without_enough_crop(genome_fa, tmp_path, monkeypatch):
    """The check above can fail: with a crop smaller than K the window edges show."""
    module = CountingModule("same", 1000, resolution=1)
    monkeypatch.setattr(forward, "load_model", lambda ckpt, device: module)
    paths = predict_genome("unused.ckpt", genome_fa, tmp_path, crop=K // 2, precision=0,
                           reverse_complement=False, device="cpu", smooth=0, blend=0)
    genome = Genome(genome_fa)
    n = genome.sizes["long"]
    bw = pybigtools.open(str(paths["gc"]))
    got = np.asarray(bw.values("long", 0, n, fillna=None))
    bw.close()
    assert (got != untiled(genome.codes("long", 0, n), 1, False)[0]).sum() > 0


def test_mask_unknown_leaves_n_runs_without_a_value(genome_fa, tmp_path, monkeypatch):
    module = CountingModule("same", 1000, resolution=1)
    monkeypatch.setattr(forward, "load_model", lambda ckpt, device: module)
    paths = predict_genome("unused.ckpt", genome_fa, tmp_path, precision=0, reverse_complement=False,
                           device="cpu", smooth=0, mask_unknown=True, blend=0)
    genome = Genome(genome_fa)
    bw = pybigtools.open(str(paths["gc"]))
    for chrom, n in genome.sizes.items():
        codes = genome.codes(chrom, 0, n)
        got = np.asarray(bw.values(chrom, 0, n, fillna=None), dtype=np.float64)
        unknown = codes == 4
        assert unknown.sum() == 57, chrom
        np.testing.assert_array_equal(np.isnan(got), unknown, err_msg=chrom)  # explicit no-data, nothing else
        np.testing.assert_array_equal(got[~unknown], untiled(codes, 1, False)[0][~unknown].astype(np.float32))
    bw.close()

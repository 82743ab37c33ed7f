"""The origin proxy: top peaks of a track near exact motif matches, against random positions."""

from __future__ import annotations

import numpy as np
import pyfaidx
import pytest

from seq_unet.evaluate.origins import motif_positions, peak_enrichment, top_peaks
from tests.conftest import random_sequence, write_binned_bigwig, write_fasta


def test_motif_is_found_on_both_strands_at_its_centre():
    seq = "GGGG" + "ATTTATATTTA" + "CCCCCC" + "TAAATATAAAT"[::-1] + "GG"
    # ATTTATATTTA matches WTTTAYRTTTW; the second insert is its reverse complement read backwards
    hits = motif_positions(seq)
    assert 4 + 5 in hits
    fwd_only = motif_positions("GGGGATTTATATTTAGGGG")
    assert list(fwd_only) == [4 + 5]
    rc = "GGGG" + "TAAATATAAAT" + "GGGG"  # reverse complement of ATTTATATTTA
    assert list(motif_positions(rc)) == [4 + 5]
    assert len(motif_positions("GGGGATTTGTATTTAGGGG")) == 0  # G where Y is required


def test_top_peaks_are_the_highest_maxima_kept_apart():
    v = np.zeros(100)
    v[[10, 12, 50, 90]] = [5, 4, 3, 2]
    v[60] = np.nan
    assert list(top_peaks(v, 3, separation=5)) == [10, 50, 90]
    assert list(top_peaks(v, 4, separation=1)) == [10, 12, 50, 90]


@pytest.mark.parametrize("on_motif", [True, False])
def test_peak_enrichment_counts_peaks_on_motifs(tmp_path, on_motif):
    rng = np.random.default_rng(0)
    n, site = 200_000, "ATTTATATTTA"
    seq = list(random_sequence(rng, n).replace("TTTA", "GGGA"))  # few chance matches
    planted = np.arange(5000, n - 5000, 10_000)
    for p in planted:
        seq[p - 5:p + 6] = site
    seq = "".join(seq)
    fa = write_fasta(tmp_path / "g.fa", {"c1": seq})
    pyfaidx.Faidx(str(fa))
    values = np.zeros(n // 100)
    peaks = planted if on_motif else planted + 3000
    values[peaks // 100] = np.linspace(2, 1, len(peaks))
    bw = write_binned_bigwig(tmp_path / "t.bw", {"c1": n}, {"c1": values}, 100)
    r = peak_enrichment(str(bw), str(fa), ["c1"], n_peaks=len(planted), radius=200, separation=2000)
    assert r["peaks"] == len(planted)
    assert r["motif_matches"] >= len(planted)
    assert r["random_fraction"] < 0.2
    if on_motif:  # each peak's 100-bp bin starts within 100 bp of its site
        assert r["peak_fraction"] == 1.0 and r["enrichment"] > 5
    else:
        assert r["peak_fraction"] < 0.2

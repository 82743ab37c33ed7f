"""bigWig writing, read back by an independent reader (pybigtools, a Rust implementation)."""

from __future__ import annotations

import numpy as np
import pybigtools
import pytest

from seq_unet.io.bigwig_write import BigWigWriter, run_length_encode, write_bigwig


def test_run_length_encode_known():
    starts, ends, vals = run_length_encode(np.array([1.0, 1.0, 2.0, np.nan, np.nan, 2.0, 2.0004]), 0.001)
    assert starts.tolist() == [0, 2, 5]
    assert ends.tolist() == [2, 3, 7]
    np.testing.assert_allclose(vals, [1.0, 2.0, 2.0])


def test_round_trip_with_independent_reader(tmp_path):
    rng = np.random.default_rng(1)
    sizes = {"chr2": 50_000, "chr10": 7_001, "chr1": 123}  # deliberately not sorted
    tracks = {}
    for c, n in sizes.items():
        x = np.cumsum(rng.normal(0, 0.01, n)) + 1.5
        tracks[c] = x.astype(np.float32)
    tracks["chr2"][1000:1500] = np.nan  # explicit no-data
    precision = 1e-3
    path = tmp_path / "t.bw"
    write_bigwig(path, sizes, tracks.items(), precision=precision)

    bw = pybigtools.open(str(path))
    assert list(bw.chroms().items()) == list(sizes.items())  # FASTA order, true lengths
    assert bw.info()["zoomLevels"] > 0  # IGV needs zoom levels
    for c, n in sizes.items():
        got = np.asarray(bw.values(c, 0, n, fillna=None), dtype=np.float64)
        want = tracks[c].astype(np.float64)
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.isnan(got), nan)
        err = np.abs(got[~nan] - want[~nan])
        assert err.max() <= precision / 2 + 1e-6
    bw.close()


def _read_all(path, sizes):
    bw = pybigtools.open(str(path))
    try:
        assert list(bw.chroms().items()) == list(sizes.items())
        return {c: np.asarray(bw.values(c, 0, n, fillna=None), dtype=np.float64) for c, n in sizes.items()}
    finally:
        bw.close()


@pytest.mark.parametrize("precision", [0.005, 0.01, 0.0])
def test_runs_and_per_base_chromosomes_in_one_file(tmp_path, precision):
    """A smooth chromosome is written as runs, a jittery one base by base; both read back exactly."""
    rng = np.random.default_rng(3)
    sizes = {"smooth": 200_000, "jitter": 30_011, "empty": 500, "one": 1}
    x = np.arange(sizes["smooth"])
    tracks = {
        "smooth": (1.5 + 0.5 * np.sin(x / 9000)).astype(np.float32),
        "jitter": (1.5 + rng.normal(0, 0.2, sizes["jitter"])).astype(np.float32),
        "empty": np.full(500, np.nan, np.float32),  # no data at all: no entries
        "one": np.array([2.0], np.float32),
    }
    tracks["smooth"][:700] = np.nan  # masked chromosome start
    tracks["smooth"][50_000:50_123] = np.inf  # non-finite input is no data too
    for a, b in ((0, 3), (100, 101), (5000, 7000), (30_000, 30_011)):  # gaps, including both ends
        tracks["jitter"][a:b] = np.nan
    write_bigwig(tmp_path / "t.bw", sizes, tracks.items(), precision=precision)
    got = _read_all(tmp_path / "t.bw", sizes)
    for c, want in tracks.items():
        want = want.astype(np.float64)
        nodata = ~np.isfinite(want)
        np.testing.assert_array_equal(np.isnan(got[c]), nodata, err_msg=c)
        err = np.abs(got[c][~nodata] - want[~nodata])
        # half a step, plus float32's own rounding of the stored value
        assert err.max(initial=0) <= precision / 2 + 2e-7 * 2, (c, err.max())
    if precision:
        # runs: the smooth 200 kb costs less than 2 bytes a base even at the coarsest zoom-included size
        assert (tmp_path / "t.bw").stat().st_size < 200_000


def test_writer_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "t.bw"
    with pytest.raises(ValueError, match="out of order"):
        with BigWigWriter(path, {"a": 10, "b": 10}) as w:
            w.add("b", np.zeros(10))
    assert not path.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="closed before chromosomes"):
        with BigWigWriter(path, {"a": 10, "b": 10}) as w:
            w.add("a", np.zeros(10))
    assert not path.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="got 9 values"):
        with BigWigWriter(path, {"a": 10}) as w:
            w.add("a", np.zeros(9))
    assert list(tmp_path.iterdir()) == []


def test_track_chromosome_names_must_match_fasta(tmp_path):
    from seq_unet.errors import InputError
    from seq_unet.io.bigwig_read import check_tracks_match_genome

    genome = {"chrI": 1000, "chrII": 500}
    write_bigwig(tmp_path / "roman.bw", {"I": 1000, "II": 500}, [("I", np.ones(1000)), ("II", np.ones(500))])
    with pytest.raises(InputError) as err:
        check_tracks_match_genome(genome, {"t": str(tmp_path / "roman.bw")})
    msg = str(err.value)
    assert "['I', 'II']" in msg and "FASTA chromosomes: ['chrI', 'chrII']" in msg and "roman.bw" in msg
    write_bigwig(tmp_path / "short.bw", {"chrI": 999}, [("chrI", np.ones(999))])
    with pytest.raises(InputError, match="chrI: track 999 bp vs FASTA 1000 bp"):
        check_tracks_match_genome(genome, {"t": str(tmp_path / "short.bw")})
    # a track lacking a chromosome is accepted; that chromosome is masked
    write_bigwig(tmp_path / "partial.bw", {"chrI": 1000}, [("chrI", np.ones(1000))])
    assert check_tracks_match_genome(genome, {"t": str(tmp_path / "partial.bw")}) == {"t": ["chrII"]}
    (tmp_path / "junk.bw").write_text("not a bigwig")
    with pytest.raises(InputError, match="junk.bw"):
        check_tracks_match_genome(genome, {"t": str(tmp_path / "junk.bw")})


def test_values_per_bin_write_the_file_of_the_values_per_base(tmp_path):
    """add_bins(values, bin_size) writes exactly the file of add(values repeated per base): runs of equal
    rounded bins merge, NaN bins are left out, the last bin ends at the chromosome's end."""
    sizes = {"a": 1_050, "b": 300, "c": 7}
    rng = np.random.default_rng(5)
    bins = {c: np.round(rng.normal(size=-(-n // 100)), 1).astype(np.float32) for c, n in sizes.items()}
    bins["a"][3:5] = np.nan
    bins["a"][6] = bins["a"][7]
    with BigWigWriter(tmp_path / "bins.bw", sizes, precision=0.01) as w:
        for c, v in bins.items():
            w.add_bins(c, v, 100)
    with BigWigWriter(tmp_path / "bases.bw", sizes, precision=0.01) as w:
        for c, v in bins.items():
            w.add(c, np.repeat(v, 100)[: sizes[c]])
    assert (tmp_path / "bins.bw").read_bytes() == (tmp_path / "bases.bw").read_bytes()
    with pytest.raises(ValueError, match="got 10 bins of 100 bp"), BigWigWriter(tmp_path / "bad.bw", sizes) as w:
        w.add_bins("a", np.zeros(10, np.float32), 100)
    assert not (tmp_path / "bad.bw").exists()


def test_a_chromosome_given_in_parts_is_the_chromosome_given_whole(tmp_path):
    """add_part: runs that cross from one part to the next are stored once, so the entries equal add()'s."""
    import pyBigWig

    rng = np.random.default_rng(3)
    sizes = {"c1": 5000, "c2": 3000}
    runs = rng.integers(1, 200, 200)  # runs of 1-199 bases, some of them no-data
    c1 = np.repeat(rng.normal(size=len(runs)), runs)[: sizes["c1"]].astype(np.float32)
    c1[np.repeat(rng.random(len(runs)) < 0.1, runs)[: sizes["c1"]]] = np.nan
    c2 = np.full(sizes["c2"], 1.25, np.float32)
    with BigWigWriter(tmp_path / "whole.bw", sizes, precision=0.01) as w:
        w.add("c1", c1)
        w.add("c2", c2)
    cuts = [0, 1, 77, 1000, 1001, 2600, 4999, 5000]  # in runs, on run edges, one-base parts
    with BigWigWriter(tmp_path / "parts.bw", sizes, precision=0.01) as w:
        for a, b in zip(cuts, cuts[1:]):
            w.add_part("c1", a, c1[a:b])
        for a, b in [(0, 1500), (1500, 3000)]:  # one run over both parts
            w.add_part("c2", a, c2[a:b])
    whole, parts = pyBigWig.open(str(tmp_path / "whole.bw")), pyBigWig.open(str(tmp_path / "parts.bw"))
    for c in sizes:
        assert parts.intervals(c) == whole.intervals(c), c
    assert parts.intervals("c2") == ((0, 3000, 1.25),)
    whole.close()
    parts.close()


def test_parts_must_continue_each_other(tmp_path):
    sizes = {"c1": 100, "c2": 50}
    with pytest.raises(ValueError, match="first part must start at 0"):
        with BigWigWriter(tmp_path / "a.bw", sizes) as w:
            w.add_part("c1", 10, np.ones(10))
    with pytest.raises(ValueError, match="does not continue"):
        with BigWigWriter(tmp_path / "b.bw", sizes) as w:
            w.add_part("c1", 0, np.ones(10))
            w.add_part("c1", 20, np.ones(10))
    with pytest.raises(ValueError, match="out of order"):
        with BigWigWriter(tmp_path / "c.bw", sizes) as w:
            w.add_part("c2", 0, np.ones(10))
    with pytest.raises(ValueError, match=r"closed before chromosomes \['c1', 'c2'\]"):
        with BigWigWriter(tmp_path / "d.bw", sizes) as w:
            w.add_part("c1", 0, np.ones(60))
    assert not list(tmp_path.iterdir())  # nothing half-written is left

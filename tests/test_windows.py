"""Tiling, splits, masks and the extracted dataset against direct reads."""

from __future__ import annotations

import json

import numpy as np
import pyBigWig
import pytest

from seq_unet.data.store import DATASET_FORMAT, WindowDataset, extract_dataset, load_manifest
from seq_unet.data.windows import WindowSpec, assign_splits, make_windows
from seq_unet.errors import InputError
from seq_unet.evaluate.genome_val import assemble_split
from seq_unet.io.bases import encode, one_hot
from seq_unet.io.intervals import tile_starts


@pytest.mark.parametrize(
    "length, window, stride, align, expected",
    [
        (100, 40, 20, 1, [0, 20, 40, 60]),          # ends exactly at the chromosome end
        (105, 40, 20, 1, [0, 20, 40, 60, 65]),      # extra window ending at the end
        (105, 40, 20, 10, [0, 20, 40, 60, 70]),     # end rounded up to the bin grid
        (30, 40, 20, 1, [0]),                       # shorter than a window
        (40, 40, 20, 1, [0]),
    ],
)
def test_tile_starts_known(length, window, stride, align, expected):
    assert tile_starts(length, window, stride, align).tolist() == expected


@pytest.mark.parametrize("length", [1, 7, 40, 41, 99, 100, 101, 257, 1000])
def test_tiles_cover_every_base(length):
    starts = tile_starts(length, 40, 30, 10)
    covered = np.zeros(length, bool)
    for s in starts:
        assert s % 10 == 0
        covered[s : s + 40] = True
    assert covered.all()


def test_assign_splits_and_errors():
    split = assign_splits(["a", "b", "c"], ["b"], ["c"])
    assert split == {"a": "train", "b": "val", "c": "test"}
    with pytest.raises(InputError, match="not in the FASTA"):
        assign_splits(["a", "b"], ["x"], [])
    with pytest.raises(InputError, match="both validation and test"):
        assign_splits(["a", "b", "c"], ["b"], ["b"])
    with pytest.raises(InputError, match="no chromosome is left for training"):
        assign_splits(["a", "b"], ["a"], ["b"])


def test_window_spec_checks():
    with pytest.raises(InputError, match="multiples of the target resolution"):
        WindowSpec(1000, 300, 200, min_valid_fraction=0.5, max_shift=0)


def test_window_longer_than_every_chromosome(tiny_genome, tiny_prepared):
    spec = WindowSpec(64_000, 32_000, 100, min_valid_fraction=0.5, max_shift=0)
    tracks = {k: str(v) for k, v in tiny_genome["tracks"].items()}
    with pytest.raises(InputError, match="longer than every chromosome"):
        make_windows(str(tiny_prepared), tracks, spec, ["chrC"], ["chrB"])


def _extract(tiny_genome, fasta, spec: WindowSpec, out) -> dict[str, str]:
    """Tile the tiny genome (val chrC, test chrB) and extract it to ``out``; return the track paths."""
    tracks = {k: str(v) for k, v in tiny_genome["tracks"].items()}
    df = make_windows(str(fasta), tracks, spec, ["chrC"], ["chrB"])
    extract_dataset(str(fasta), tracks, df, spec, out)
    return tracks


@pytest.fixture(scope="module")
def per_base_dataset(tiny_genome, tiny_prepared, tmp_path_factory):
    tracks = {k: str(v) for k, v in tiny_genome["tracks"].items()}
    spec = WindowSpec(4000, 3000, 1, min_valid_fraction=0.5, max_shift=0)
    df = make_windows(str(tiny_prepared), tracks, spec, ["chrC"], ["chrB"])
    out = tmp_path_factory.mktemp("ds") / "dataset"
    extract_dataset(str(tiny_prepared), tracks, df, spec, out)
    return df, out, tracks


def test_windows_table(per_base_dataset, tiny_genome):
    df, _, _ = per_base_dataset
    assert set(df.split) == {"train", "val", "test"}
    assert df[df.chrom == "chrB"].split.eq("test").all()
    short = df[df.chrom == "chrD"]
    assert len(short) == 1 and short.start.iloc[0] == 0 and short.pad_bases.iloc[0] == 1000
    a0 = df[(df.chrom == "chrA") & (df.start == 3000)].iloc[0]
    assert a0.unknown_bases == 300  # the N run at 5000..5300
    # every window of every chromosome is written, covering every base
    for chrom, size in tiny_genome["sizes"].items():
        cov = np.zeros(size, bool)
        for r in df[df.chrom == chrom].itertuples():
            cov[r.start : min(r.end, size)] = True
        assert cov.all(), chrom


def test_extracted_windows_equal_fasta_and_bigwig(per_base_dataset, tiny_genome):
    _, out, tracks = per_base_dataset
    manifest = load_manifest(out)
    assert manifest["tracks"] == ["gc", "noisy"] and manifest["window_length"] == 4000
    bws = {k: pyBigWig.open(v) for k, v in tracks.items()}
    for split in ("train", "val", "test"):
        ds = WindowDataset(out / split)
        assert len(ds) == manifest["splits"][split]["windows"] > 0
        for i in range(len(ds)):
            row = ds.windows.iloc[i]
            item = ds[i]
            size = tiny_genome["sizes"][row.chrom]
            end = min(row.end, size)
            seq = tiny_genome["seqs"][row.chrom][row.start : end]
            x = item["x"].numpy()
            np.testing.assert_array_equal(x[:, : end - row.start], one_hot(encode(seq)))
            assert (x[:, end - row.start :] == 0).all()  # padding past the chromosome end
            for t, name in enumerate(manifest["tracks"]):
                expect = np.array(bws[name].values(row.chrom, row.start, end), dtype=np.float32)
                valid = np.isfinite(expect) & (encode(seq) != 4)
                m = item["mask"][t].numpy()
                np.testing.assert_array_equal(m[: end - row.start], valid)
                assert not m[end - row.start :].any()
                np.testing.assert_array_equal(item["y"][t].numpy()[: end - row.start][valid], expect[valid])


def test_binned_targets_are_masked_means(tiny_genome, tiny_prepared, tmp_path):
    spec = WindowSpec(4000, 4000, 200, min_valid_fraction=0.5, max_shift=0)
    tracks = _extract(tiny_genome, tiny_prepared, spec, tmp_path / "ds")
    ds = WindowDataset(tmp_path / "ds" / "train")
    bw = pyBigWig.open(tracks["gc"])
    seq = tiny_genome["seqs"]
    checked = 0
    for i in range(len(ds)):
        row, item = ds.windows.iloc[i], ds[i]
        if row.chrom != "chrA":
            continue
        for b in range(spec.n_bins):
            s = row.start + b * 200
            v = np.array(bw.values("chrA", s, s + 200), dtype=float)
            ok = np.isfinite(v) & (encode(seq["chrA"][s : s + 200]) != 4)
            assert bool(item["mask"][0, b]) == (ok.sum() >= 100)
            if ok.sum() >= 100:
                assert item["y"][0, b].item() == pytest.approx(v[ok].mean(), rel=1e-6)
            checked += 1
    assert checked > 100


def test_random_shift_returns_a_shifted_window(tiny_genome, tiny_prepared, tmp_path):
    spec = WindowSpec(2000, 2000, 100, min_valid_fraction=0.5, max_shift=300)
    tracks = _extract(tiny_genome, tiny_prepared, spec, tmp_path / "ds")
    plain = WindowDataset(tmp_path / "ds" / "train")
    shifted = WindowDataset(tmp_path / "ds" / "train", random_shift=True, seed=3)
    bw = pyBigWig.open(tracks["gc"])
    seen = set()
    for i in range(len(plain)):
        row = plain.windows.iloc[i]
        size = tiny_genome["sizes"][row.chrom]
        seq = tiny_genome["seqs"][row.chrom]
        # without shifting: exactly the tiled window
        expected = one_hot(encode(seq[row.start : row.start + 2000]))
        np.testing.assert_array_equal(plain[i]["x"].numpy()[:, : min(2000, size)], expected)
        item = shifted[i]
        matches = []
        for off in range(-300, 301, 100):
            s = row.start + off
            codes = np.full(2000, 4, np.uint8)
            lo, hi = max(s, 0), min(s + 2000, size)
            codes[lo - s : hi - s] = encode(seq[lo:hi])
            if np.array_equal(item["x"].numpy(), one_hot(codes)):
                matches.append((off, s, lo, hi))
        assert matches, f"window {i} is not a shift of its tile by a multiple of 100 within 300"
        off, s, lo, hi = matches[0]
        seen.add(off)
        # targets move with the sequence
        b = (lo - s) // 100
        v = np.array(bw.values(row.chrom, lo, lo + 100), dtype=float)
        if np.isfinite(v).all() and item["mask"][0, b]:
            assert item["y"][0, b].item() == pytest.approx(v.mean(), rel=1e-6)
    assert len(seen) > 1


def test_each_chromosome_is_stored_once_and_windows_are_cut_from_it(tiny_genome, tiny_prepared, tmp_path):
    spec = WindowSpec(2000, 1000, 100, min_valid_fraction=0.5, max_shift=300)
    _extract(tiny_genome, tiny_prepared, spec, tmp_path / "ds")
    manifest = load_manifest(tmp_path / "ds")
    assert manifest["dataset_format"] == DATASET_FORMAT
    stored = 0
    for split in ("train", "val", "test"):
        d = tmp_path / "ds" / split
        chroms = manifest["splits"][split]["chroms"]
        dna = np.load(d / "dna.npy")
        # the split's chromosomes, whole and once each: not one row per window with its shift flanks
        np.testing.assert_array_equal(dna, np.concatenate([encode(tiny_genome["seqs"][c]) for c in chroms]))
        stored += dna.size
        ds = WindowDataset(d)
        assert len(ds) == manifest["splits"][split]["windows"]
    # overlapping windows (stride half the window) and their flanks would have stored each base about 2.6 times
    assert stored == sum(tiny_genome["sizes"].values())


def test_a_dataset_in_the_former_layout_is_refused(tiny_genome, tiny_prepared, tmp_path):
    spec = WindowSpec(2000, 2000, 100, min_valid_fraction=0.5, max_shift=0)
    _extract(tiny_genome, tiny_prepared, spec, tmp_path / "ds")
    path = tmp_path / "ds" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["dataset_format"]  # as written before the format was recorded
    path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"has format 1 .*reads format 2.*seq-unet extract"):
        WindowDataset(tmp_path / "ds" / "train")
    with pytest.raises(InputError, match="has format 1"):
        assemble_split(tmp_path / "ds", "val")


def test_a_split_whose_arrays_do_not_match_is_refused(tiny_genome, tiny_prepared, tmp_path):
    spec = WindowSpec(2000, 2000, 100, min_valid_fraction=0.5, max_shift=0)
    _extract(tiny_genome, tiny_prepared, spec, tmp_path / "ds")
    dna = tmp_path / "ds" / "train" / "dna.npy"
    np.save(dna, np.load(dna)[:-1])
    with pytest.raises(InputError, match="do not match its manifest"):
        WindowDataset(tmp_path / "ds" / "train")[0]
    (tmp_path / "ds" / "train" / "chroms.tsv").unlink()
    with pytest.raises(InputError, match="cannot read the dataset"):
        WindowDataset(tmp_path / "ds" / "train")[0]


@pytest.mark.parametrize("chunk", [None, 1, 2_500])
def test_windows_counts_from_one_pass_equal_each_window_read_alone(tiny_genome, tiny_prepared, tmp_path,
                                                                   monkeypatch, chunk):
    """`make_windows` reads each chromosome once, in chunks, and derives every window's unknown bases and
    valid bins from running counts; they must equal what reading each window on its own gives, whatever
    the chunk size (here also smaller than a window and not a multiple of the stride)."""
    from seq_unet.data import windows
    from seq_unet.io.bigwig_read import open_bigwigs
    from seq_unet.io.genome import Genome
    from seq_unet.io.intervals import read_bed

    bed = tmp_path / "blacklist.bed"
    bed.write_text("chrA\t7050\t7420\nchrC\t15900\t16000\n")
    if chunk is not None:
        monkeypatch.setattr(windows, "CHUNK", chunk)
    spec = WindowSpec(4000, 3000, 100, min_valid_fraction=0.55, max_shift=0)
    tracks = {k: str(v) for k, v in tiny_genome["tracks"].items()}
    df = make_windows(str(tiny_prepared), tracks, spec, ["chrC"], ["chrB"], str(bed))

    genome, bws = Genome(str(tiny_prepared)), open_bigwigs(tracks)
    blacklist = read_bed(str(bed), genome.sizes)
    try:
        for row in df.itertuples(index=False):
            codes, values, valid = windows.base_masks(genome, bws, row.chrom, row.start, row.end, blacklist)
            _, mask = windows.bin_targets(values, valid, spec)
            assert row.unknown_bases == int((codes == windows.UNKNOWN).sum()) - row.pad_bases, row
            for name, m in zip(tracks, mask):
                assert getattr(row, f"valid_bins_{name}") == int(m.sum()), (row, name)
    finally:
        for bw in bws.values():
            bw.close()
    # the blacklist and the N run reach the counts (the test can tell)
    assert df.unknown_bases.max() == 300
    assert df[df.chrom == "chrA"].valid_bins_gc.min() < spec.n_bins

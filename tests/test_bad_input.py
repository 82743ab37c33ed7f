"""Bad input a user can give: every case is either handled or refused with a clear
:class:`InputError` naming the file (and chromosome or line), never a traceback,
a crash or a half-written output."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

import seq_unet.io.fasta as fasta_mod
from seq_unet.data.store import extract_dataset
from seq_unet.data.windows import WindowSpec, base_masks, make_windows
from seq_unet.errors import InputError
from seq_unet.io.bases import encode, one_hot
from seq_unet.io.bigwig_read import check_tracks_match_genome, open_bigwig, read_values, track_chrom_sizes
from seq_unet.io.fasta import prepare_fasta
from seq_unet.io.genome import Genome
from tests.conf_values import LINEAR_OVERRIDES
from tests.conftest import random_sequence, write_binned_bigwig, write_fasta

EXE = str(Path(sys.executable).parent / "seq-unet")
IUPAC = "RYKMSWBDHV"
SIZES = {"chrA": 12_000, "chrB": 8_000, "chrC": 8_000}


def _no_output(dst: Path) -> bool:
    """Nothing under ``dst``'s name, and no temporary file left beside it."""
    return not dst.exists() and not [p for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}.")]


def _refused(src: Path, dst: Path, *fragments: str) -> str:
    with pytest.raises(InputError) as err:
        prepare_fasta(src, dst)
    msg = str(err.value)
    assert str(src) in msg, msg
    for f in fragments:
        assert f in msg, msg
    assert _no_output(dst)
    return msg


def _small_bigwig(path: Path, sizes: dict[str, int] = SIZES, zooms: int = 10) -> Path:
    """Per-base values (so data blocks are large and several zoom levels exist)."""
    rng = np.random.default_rng(1)
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()), maxZooms=zooms)
    for chrom, n in sizes.items():
        bw.addEntries(chrom, 0, values=rng.normal(1.5, 0.2, n), span=1, step=1)
    bw.close()
    return path


def _ones(sizes: dict[str, int]) -> dict[str, np.ndarray]:
    return {c: np.ones(-(-n // 100)) for c, n in sizes.items()}


def _index_leaves(data: bytes) -> np.ndarray:
    """Leaf items (chromosome ids, bases, data block offset and size) of a bigWig's index."""
    index_at = struct.unpack_from("<Q", data, 24)[0]
    leaf, _, count = struct.unpack_from("<BBH", data, index_at + 48)
    assert leaf, "test files are small enough for a one-node index"
    dtype = [("c0", "<u4"), ("b0", "<u4"), ("c1", "<u4"), ("b1", "<u4"), ("at", "<u8"), ("n", "<u8")]
    return np.frombuffer(data, dtype=dtype, count=count, offset=index_at + 52)


# ---------------------------------------------------------------- FASTA: bases


@pytest.fixture
def ambiguous_genome(tmp_path):
    """A FASTA with soft-masked stretches, N runs and every IUPAC ambiguity code, plus a track."""
    rng = np.random.default_rng(3)
    seqs = {c: list(random_sequence(rng, n)) for c, n in SIZES.items()}
    seqs["chrA"][100:400] = [b.lower() for b in seqs["chrA"][100:400]]
    seqs["chrA"][2000:2500] = "N" * 500
    seqs["chrA"][3000:3010] = IUPAC
    seqs["chrB"][50:60] = IUPAC.lower()
    seqs["chrB"][7000:7100] = "n" * 100
    seqs["chrC"][10:13] = "-*."  # alignment gap / stop symbols: unknown too
    seqs = {c: "".join(s) for c, s in seqs.items()}
    fasta = write_fasta(tmp_path / "amb.fa", seqs, line=70)
    values = {c: np.full(-(-n // 100), 1.0) + rng.normal(0, 0.1, -(-n // 100)) for c, n in SIZES.items()}
    track = write_binned_bigwig(tmp_path / "t.bw", SIZES, values, 100)
    return {"fasta": fasta, "seqs": seqs, "track": track}


def test_soft_mask_is_a_base_and_n_and_iupac_are_unknown(ambiguous_genome, tmp_path):
    prepared = tmp_path / "g.fa"
    prepare_fasta(ambiguous_genome["fasta"], prepared)
    g, seqs = Genome(prepared), ambiguous_genome["seqs"]
    np.testing.assert_array_equal(g.codes("chrA", 100, 400), encode(seqs["chrA"][100:400].upper()))
    assert (g.codes("chrA", 100, 400) < 4).all()
    for chrom, lo, hi in (("chrA", 2000, 2500), ("chrA", 3000, 3010), ("chrB", 50, 60), ("chrC", 10, 13)):
        assert (g.codes(chrom, lo, hi) == 4).all()
        assert (one_hot(g.codes(chrom, lo, hi)) == 0).all()


def test_manifest_counts_n_and_iupac_bases(ambiguous_genome, tmp_path):
    prepared = tmp_path / "g.fa"
    prepare_fasta(ambiguous_genome["fasta"], prepared)
    tracks = {"t": str(ambiguous_genome["track"])}
    spec = WindowSpec(2000, 2000, 100, min_valid_fraction=0.5, max_shift=0)
    df = make_windows(str(prepared), tracks, spec, ["chrB"], ["chrC"])
    manifest = extract_dataset(str(prepared), tracks, df, spec, tmp_path / "ds")
    expected = {c: sum(not b.isalpha() or b.upper() not in "ACGT" for b in s)
                for c, s in ambiguous_genome["seqs"].items()}
    assert expected == {"chrA": 510, "chrB": 110, "chrC": 3}
    assert manifest["unknown_bases"] == expected
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["unknown_bases"] == expected
    assert df.groupby("chrom").unknown_bases.sum().to_dict() == expected


# ------------------------------------------------ FASTA: line breaks, compression


def _layouts(tmp_path) -> tuple[dict[str, str], bytes]:
    rng = np.random.default_rng(5)
    seqs = {"c1": random_sequence(rng, 1000), "c2": "ACGTN" * 41, "c3": "g"}
    ref = tmp_path / "ref.fa"
    write_fasta(ref, seqs, line=60)
    prepare_fasta(ref, tmp_path / "ref.out.fa")
    return seqs, (tmp_path / "ref.out.fa").read_bytes()


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r", "mixed"])
def test_line_breaks_of_every_platform(tmp_path, newline):
    """Unix, Windows (CRLF) and old Mac (CR only) line breaks give the same prepared FASTA."""
    seqs, expected = _layouts(tmp_path)
    lines = [f">{n} description" if i == 0 else s[(i - 1) * 60 : i * 60]
             for n, s in seqs.items() for i in range(1 + -(-len(s) // 60))]
    if newline == "mixed":
        text = "".join(line + ("\r\n", "\n", "\r")[i % 3] for i, line in enumerate(lines))
    else:
        text = "".join(line + newline for line in lines)
    src = tmp_path / "in.fa"
    src.write_bytes(text.encode())
    assert prepare_fasta(src, tmp_path / "out.fa") == {n: len(s) for n, s in seqs.items()}
    assert (tmp_path / "out.fa").read_bytes() == expected
    g = Genome(tmp_path / "out.fa")
    assert g.codes("c1", 0, 1000).tolist() == encode(seqs["c1"]).tolist()


def test_utf8_byte_order_mark_is_dropped(tmp_path):
    src = tmp_path / "bom.fa"
    src.write_bytes(b"\xef\xbb\xbf>c1 from a Windows editor\r\nACGT\r\nAC\r\n")
    assert prepare_fasta(src, tmp_path / "out.fa") == {"c1": 6}
    assert (tmp_path / "out.fa").read_bytes() == b">c1\nACGT\nAC\n"


def test_blank_lines_whitespace_and_ragged_lines_are_tidied(tmp_path):
    src = tmp_path / "messy.fa"
    src.write_bytes(b"\n\n>c1 x y\nACGTA  \n\tCG\n\nTTTTTTT\r\nA\n>c2\n  GG\n")
    assert prepare_fasta(src, tmp_path / "out.fa") == {"c1": 15, "c2": 2}
    # re-wrapped at the width of each record's first line, so pyfaidx can index it
    assert (tmp_path / "out.fa").read_bytes() == b">c1\nACGTA\nCGTTT\nTTTTA\n>c2\nGG\n"
    assert Genome(tmp_path / "out.fa").codes("c1", 0, 15).tolist() == encode("ACGTACGTTTTTTTA").tolist()


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_streaming_in_small_pieces_gives_the_same_result(tmp_path, monkeypatch, chunk):
    """The FASTA is read in blocks; records, CRLF pairs and errors split across blocks stay whole."""
    src = tmp_path / "in.fa"
    src.write_bytes(b">c1 d\r\nACGTAC\r\nGT\r\n\r\n>c2\rAAA\rCC\r>c3\nT\n")
    expected = {"c1": 8, "c2": 5, "c3": 1}
    assert prepare_fasta(src, tmp_path / "ref.fa") == expected
    monkeypatch.setattr(fasta_mod, "_CHUNK", chunk)
    assert prepare_fasta(src, tmp_path / "out.fa") == expected
    assert (tmp_path / "out.fa").read_bytes() == (tmp_path / "ref.fa").read_bytes()
    bad = tmp_path / "bad.fa"
    bad.write_bytes(b">c1\r\nACGT\r\n\r\n>c2\r\nACGT\r\nAC7T\r\n")
    _refused(bad, tmp_path / "bad.out.fa", "line 6, column 3", "sequence 'c2'", "'7'")


def _seqs_with_unknowns() -> dict[str, str]:
    rng = np.random.default_rng(11)
    a = random_sequence(rng, 150_000)
    return {"chr1": a[:70_000] + "N" * 500 + a[70_000:], "chrM": "acgtRYKM" * 100}


def _check_prepared(dst: Path, seqs: dict[str, str]) -> None:
    g = Genome(dst)
    assert g.sizes == {c: len(s) for c, s in seqs.items()}
    for c, s in seqs.items():
        np.testing.assert_array_equal(g.codes(c, 0, len(s)), encode(s))


def test_plain_gzip_end_to_end(tmp_path):
    seqs = _seqs_with_unknowns()
    src = tmp_path / "g.fa.gz"
    src.write_bytes(gzip.compress(write_fasta(tmp_path / "plain.fa", seqs).read_bytes()))
    prepare_fasta(src, tmp_path / "out.fa")
    _check_prepared(tmp_path / "out.fa", seqs)


def _bgzf(data: bytes, block: int = 65_280) -> bytes:
    """BGZF (as written by bgzip): gzip members of at most 64 KiB with a 'BC' extra field
    holding the member's size, and an empty member to mark the end."""
    out = []
    for chunk in [data[i : i + block] for i in range(0, len(data), block)] + [b""]:
        deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = deflate.compress(chunk) + deflate.flush()
        header = struct.pack("<BBBBIBBHBBHH", 31, 139, 8, 4, 0, 0, 255, 6, ord("B"), ord("C"), 2,
                             18 + len(body) + 8 - 1)
        out.append(header + body + struct.pack("<II", zlib.crc32(chunk), len(chunk)))
    return b"".join(out)


def test_bgzip_end_to_end(tmp_path):
    seqs = _seqs_with_unknowns()
    text = write_fasta(tmp_path / "plain.fa", seqs).read_bytes()
    src = tmp_path / "g.fa.gz"
    src.write_bytes(_bgzf(text))
    assert src.read_bytes()[-28:] == bytes.fromhex(  # the standard BGZF end-of-file marker
        "1f8b08040000000000ff0600424302001b0003000000000000000000")
    prepare_fasta(src, tmp_path / "out.fa")
    _check_prepared(tmp_path / "out.fa", seqs)
    # plain concatenated gzip members (cat a.fa.gz b.fa.gz) read the same way
    src.write_bytes(gzip.compress(text[:1000]) + gzip.compress(text[1000:]))
    prepare_fasta(src, tmp_path / "out2.fa")
    _check_prepared(tmp_path / "out2.fa", seqs)


def test_truncated_and_corrupt_gzip(tmp_path):
    text = write_fasta(tmp_path / "plain.fa", _seqs_with_unknowns()).read_bytes()
    data = gzip.compress(text)
    src = tmp_path / "cut.fa.gz"
    src.write_bytes(data[: len(data) // 2])
    _refused(src, tmp_path / "out.fa", "truncated")
    bgzf = _bgzf(text)
    src.write_bytes(bgzf[: len(bgzf) // 2])  # cut inside a BGZF member
    _refused(src, tmp_path / "out.fa", "truncated")
    bad = bytearray(data)
    bad[len(bad) // 2 : len(bad) // 2 + 64] = bytes(64)
    src.write_bytes(bytes(bad))
    msg = _refused(src, tmp_path / "out.fa")
    assert "corrupt" in msg or "truncated" in msg


# ------------------------------------------------------- FASTA: not FASTA at all


@pytest.mark.parametrize(
    "name, content, fragments",
    [
        ("reads.fq", b"@read1\nACGT\n+\nIIII\n", ["is not a FASTA file (it looks like FASTQ)", "line 1", "@read1"]),
        ("reads.fq.gz", gzip.compress(b"@read1\nACGT\n+\nIIII\n"), ["it looks like FASTQ"]),
        ("chr.gb", b"LOCUS       NC_001133  230218 bp  DNA  linear\nORIGIN\n        1 ccacaccaca\n//\n",
         ["it looks like GenBank", "line 1"]),
        ("g.gff", b"##gff-version 3\nchrI\tSGD\tgene\t1\t100\t.\t+\t.\tID=a\n", ["it looks like GFF"]),
        ("late.fa", b"\n\nACGT\n>c1\nACGT\n", ["is not a FASTA file", "line 3 comes before any '>' header"]),
        ("g.fa.bz2", bz2.compress(b">c1\nACGT\n"), ["bzip2-compressed"]),
        ("g.2bit", struct.pack("<IIII", 0x1A412743, 0, 1, 0) + b"\x01c", ["a .2bit file"]),
        ("blob.fa", bytes(range(256)) * 4, ["it looks like a binary file"]),
        ("utf16.fa", ">c1\nACGT\n".encode("utf-16"), ["it looks like UTF-16 text"]),
    ],
)
def test_files_that_are_not_fasta(tmp_path, name, content, fragments):
    src = tmp_path / name
    src.write_bytes(content)
    _refused(src, tmp_path / "out" / "genome.fa", *fragments)


def test_a_bigwig_or_a_directory_given_as_fasta(tmp_path):
    bw = _small_bigwig(tmp_path / "t.bw")
    _refused(bw, tmp_path / "out.fa", "is not a FASTA file: it looks like a bigWig file")
    (tmp_path / "dir.fa").mkdir()
    _refused(tmp_path / "dir.fa", tmp_path / "out.fa", "is a directory")


@pytest.mark.parametrize(
    "line, fragments",
    [
        (b"ACG1TT", ["line 5, column 4", "the character '1'"]),
        (b"ACG TT", ["line 5, column 4", "a space"]),
        (b"ACGT\tT", ["line 5, column 5", "a tab"]),
        (b"ACGT,T", ["the character ','"]),
        (b"ACGT#T", ["the character '#'"]),
        (b"ACGT\xc3\xa9T", ["the byte 0xc3"]),
        (b"MEEPKLIV", ["'E' is not a nucleotide code; is this a protein FASTA?"]),
    ],
)
def test_characters_that_cannot_be_sequence(tmp_path, line, fragments):
    src = tmp_path / "bad.fa"
    src.write_bytes(b">c1\nACGT\n>c2 second\nACGTAC\n" + line + b"\nACGT\n")
    msg = _refused(src, tmp_path / "out.fa", "sequence 'c2'", *fragments)
    assert "line 5" in msg


def test_gap_and_stop_symbols_and_trailing_spaces_are_accepted(tmp_path):
    src = tmp_path / "gaps.fa"
    src.write_bytes(b">c1\nAC--GT**NN..  \nXxUu \n")
    assert prepare_fasta(src, tmp_path / "out.fa") == {"c1": 16}
    assert Genome(tmp_path / "out.fa").codes("c1", 0, 16).tolist() == [0, 1, 4, 4, 2, 3] + [4] * 10


@pytest.mark.filterwarnings("ignore:Index file .* is older than FASTA file")
def test_fasta_changed_after_indexing_is_a_clear_error(tmp_path):
    src = write_fasta(tmp_path / "g.fa", {"a": "ACGT" * 50, "b": "GGCC"})
    prepare_fasta(src, tmp_path / "out.fa")
    g = Genome(tmp_path / "out.fa")
    (tmp_path / "out.fa").write_bytes((tmp_path / "out.fa").read_bytes()[:100])
    with pytest.raises(InputError, match=r"changed after it was indexed"):
        g.codes("a", 0, 200)


# ------------------------------------------------------------ tracks: chromosome names


def test_chr_prefix_difference_is_named(tmp_path):
    genome = {"chrI": 1000, "chrII": 500, "chrIII": 300, "chrM": 80}
    sizes = {"I": 1000, "II": 500, "III": 300, "MT": 80}
    bw = write_binned_bigwig(tmp_path / "roman.bw", sizes, _ones(sizes), 100)
    with pytest.raises(InputError) as err:
        check_tracks_match_genome(genome, {"rt": str(bw)})
    msg = str(err.value)
    assert "roman.bw" in msg and "FASTA chromosomes: ['chrI', 'chrII', 'chrIII', 'chrM']" in msg
    assert ("The track names chromosomes 'I', 'II', 'III', 'MT' where the FASTA has 'chrI', 'chrII', 'chrIII', "
            "'chrM': the names differ by a 'chr' prefix") in msg
    assert "the FASTA's names have a 'chr' prefix that the track's lack" in msg
    # the other way round: the track has the prefix, the FASTA does not
    with pytest.raises(InputError) as err:
        check_tracks_match_genome(sizes | {"IV": 10}, {"rt": str(
            write_binned_bigwig(tmp_path / "chr.bw", genome, _ones(genome), 100))})
    msg = str(err.value)
    assert "differ by a 'chr' prefix" in msg and "the track's names have a 'chr' prefix that the FASTA's lack" in msg
    # unrelated names: no hint
    other = write_binned_bigwig(tmp_path / "other.bw", {"scaffold_1": 1000}, {"scaffold_1": np.ones(10)}, 100)
    with pytest.raises(InputError) as err:
        check_tracks_match_genome(genome, {"rt": str(other)})
    assert "differ by" not in str(err.value) and "['scaffold_1']" in str(err.value)


def test_long_name_lists_are_abbreviated(tmp_path):
    genome = {f"chr{i}": 100 for i in range(1, 3001)}
    track = {f"contig{i}": 100 for i in range(1, 3001)}
    bw = pyBigWig.open(str(tmp_path / "many.bw"), "w")
    bw.addHeader(list(track.items()), maxZooms=0)
    bw.close()
    with pytest.raises(InputError) as err:
        check_tracks_match_genome(genome, {"rt": str(tmp_path / "many.bw")})
    msg = str(err.value)
    assert len(msg) < 1000, msg
    assert "FASTA chromosomes: ['chr1', 'chr2', 'chr3', 'chr4', 'chr5', 'chr6', ... and 2994 more (3000 in all)]" in msg
    assert "'contig1'" in msg and "3000 in all" in msg


def test_missing_chromosome_is_masked_with_a_warning(tmp_path, caplog):
    sizes = {"chrA": 1000, "chrB": 500}
    bw = write_binned_bigwig(tmp_path / "partial.bw", sizes, {"chrA": np.ones(10)}, 100)
    # a chromosome in the header without values, and one absent from the header, both masked
    bw2 = write_binned_bigwig(tmp_path / "short.bw", {"chrA": 1000}, {"chrA": np.ones(10)}, 100)
    genome = sizes | {"chrC": 300}
    with caplog.at_level("WARNING", logger="seq_unet.io.bigwig_read"):
        assert check_tracks_match_genome(genome, {"p": str(bw), "s": str(bw2)}) == {"p": ["chrC"],
                                                                                   "s": ["chrB", "chrC"]}
    assert "track s (" in caplog.text and "has no values on 2 chromosome(s) ['chrB', 'chrC']: 800 bases masked" \
        in caplog.text
    assert "has no values on 1 chromosome(s) ['chrC']: 300 bases masked" in caplog.text
    with open_bigwig(bw2) as h:
        assert np.isnan(read_values(h, "chrB", 0, 500, 500)).all()
    with open_bigwig(bw) as h:
        assert np.isnan(read_values(h, "chrB", 0, 500, 500)).all()  # in the header, no values


def test_chromosome_lengths_differ(tmp_path):
    genome = {"chrA": 1000, "chrB": 500}
    bw = write_binned_bigwig(tmp_path / "other.bw", {"chrA": 1000, "chrB": 499}, {"chrA": np.ones(10)}, 100)
    with pytest.raises(InputError, match=r"other\.bw\) was made for another assembly: chromosome lengths differ "
                                         r"\(chrB: track 499 bp vs FASTA 500 bp\)"):
        check_tracks_match_genome(genome, {"t": str(bw)})
    # read without the check (as evaluation does): a clear error, not pyBigWig's "Invalid interval bounds"
    with open_bigwig(bw) as h, pytest.raises(InputError, match=r"other\.bw: chromosome chrB has 499 bp in the "
                                                               r"track but 500 bp in the genome"):
        read_values(h, "chrB", 0, 500, 500)


# ------------------------------------------------------------ tracks: values


def test_nan_and_infinite_values_are_masked(tmp_path):
    sizes = {"chrA": 3000, "chrB": 2000, "chrC": 2000}
    bw = pyBigWig.open(str(tmp_path / "nan.bw"), "w")
    bw.addHeader(list(sizes.items()), maxZooms=0)
    for chrom, n in sizes.items():
        if chrom == "chrA":  # NaN, +inf and -inf runs amid 2.0
            starts, ends = [0, 100, 200, 500, 550, 900, 905], [100, 200, 500, 550, 900, 905, n]
            values = [2.0, np.nan, 2.0, np.inf, 2.0, -np.inf, 2.0]
            bw.addEntries([chrom] * 7, starts, ends=ends, values=values)
        else:
            bw.addEntries([chrom], [0], ends=[n], values=[2.0])
    bw.close()
    path = str(tmp_path / "nan.bw")
    with open_bigwig(path) as h:
        v = read_values(h, "chrA", 0, 1000, 3000)
    bad = np.zeros(1000, bool)
    bad[100:200] = bad[500:550] = bad[900:905] = True
    assert np.isnan(v[bad]).all() and (v[~bad] == 2.0).all()
    fasta = write_fasta(tmp_path / "g.fa", {c: "ACGT" * (n // 4) for c, n in sizes.items()})
    prepare_fasta(fasta, tmp_path / "p.fa")
    spec = WindowSpec(1000, 1000, 1, min_valid_fraction=0.5, max_shift=0)
    df = make_windows(str(tmp_path / "p.fa"), {"t": path}, spec, ["chrB"], ["chrC"])
    assert df[df.chrom == "chrA"].set_index("start").loc[0, "valid_bins_t"] == 1000 - 155
    extract_dataset(str(tmp_path / "p.fa"), {"t": path}, df, spec, tmp_path / "ds")
    mask = np.load(tmp_path / "ds" / "train" / "mask.npy")[0, 0]
    target = np.load(tmp_path / "ds" / "train" / "target.npy")[0, 0]
    np.testing.assert_array_equal(mask, ~bad)
    assert np.isfinite(target).all() and (target[~bad] == 2.0).all()


# ------------------------------------------------------ tracks: damaged files


@pytest.fixture
def good_bigwig(tmp_path) -> tuple[Path, bytes]:
    path = _small_bigwig(tmp_path / "good.bw")
    return path, path.read_bytes()


def _cuts(data: bytes) -> dict[str, int]:
    n_zoom = struct.unpack_from("<H", data, 6)[0]
    assert n_zoom >= 2
    return {"in the header": 40, "in the zoom headers": 64 + 24 * n_zoom - 10, "first 100 bytes": 100,
            "half": len(data) // 2, "all but 4 KB": len(data) - 4096, "all but 16 bytes": len(data) - 16}


@pytest.mark.parametrize("where", ["in the header", "in the zoom headers", "first 100 bytes", "half",
                                   "all but 4 KB", "all but 16 bytes"])
def test_truncated_bigwig(tmp_path, good_bigwig, where):
    """pyBigWig crashes the process (segfault) on a file cut inside its zoom headers and
    refuses most other cuts with a bare RuntimeError; all are refused before it reads them."""
    _, data = good_bigwig
    cut = tmp_path / "cut.bw"
    cut.write_bytes(data[: _cuts(data)[where]])
    with pytest.raises(InputError, match=r"cut\.bw is truncated or corrupt: .*copy or download it again"):
        open_bigwig(cut)
    with pytest.raises(InputError, match=r"cut\.bw is truncated or corrupt"):
        check_tracks_match_genome(SIZES, {"t": str(cut)})


def test_random_bytes_in_the_data(tmp_path, good_bigwig):
    """A damaged data block: pyBigWig raises RuntimeError on reading that chromosome only."""
    _, data = good_bigwig
    leaves = _index_leaves(data)
    block = leaves[leaves["c0"] == 1][0]  # the first data block of chrB
    bad = bytearray(data)
    mid = int(block["at"] + block["n"] // 2)
    bad[mid : mid + 32] = np.random.default_rng(0).integers(0, 256, 32, dtype=np.uint8).tobytes()
    path = tmp_path / "damaged.bw"
    path.write_bytes(bytes(bad))
    assert check_tracks_match_genome(SIZES, {"t": str(path)}) == {"t": []}  # header and index are intact
    expected = r"damaged\.bw is corrupt: reading chrB:0-8000 failed"
    with open_bigwig(path) as h:
        assert np.isfinite(read_values(h, "chrA", 0, 12_000, 12_000)).all()
        with pytest.raises(InputError, match=expected):
            read_values(h, "chrB", 0, 8000, 8000)
    fasta = write_fasta(tmp_path / "g.fa", {c: "ACGT" * (n // 4) for c, n in SIZES.items()})
    prepare_fasta(fasta, tmp_path / "p.fa")
    g = Genome(tmp_path / "p.fa")
    with open_bigwig(path) as h, pytest.raises(InputError, match=r"damaged\.bw is corrupt: reading chrB:"):
        base_masks(g, {"t": h}, "chrB", 4000, 6000, None)
    spec = WindowSpec(4000, 4000, 100, min_valid_fraction=0.5, max_shift=0)
    with pytest.raises(InputError, match=r"damaged\.bw is corrupt: reading chrB:"):
        make_windows(str(tmp_path / "p.fa"), {"t": str(path)}, spec, ["chrB"], ["chrC"])
    df = make_windows(str(tmp_path / "p.fa"), {"t": str(good_bigwig[0])}, spec, ["chrB"], ["chrC"])
    with pytest.raises(InputError, match=r"damaged\.bw is corrupt: reading chrB:"):
        extract_dataset(str(tmp_path / "p.fa"), {"t": str(path)}, df, spec, tmp_path / "ds")
    assert _no_output(tmp_path / "ds")


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def test_damaged_chromosome_list_and_index(tmp_path, good_bigwig):
    """Damage that crashes pyBigWig (a chromosome id out of range, a wrong node size) or makes
    it return no values silently (a damaged index entry) is refused when the file is opened."""
    _, data = good_bigwig
    tree_at, index_at = struct.unpack_from("<Q", data, 8)[0], struct.unpack_from("<Q", data, 24)[0]
    key_size = struct.unpack_from("<I", data, tree_at + 8)[0]
    first_id = tree_at + 32 + 4 + key_size
    cases = {
        "id out of range": (_patched(data, first_id, "<I", 7), "invalid or repeated chromosome ids"),
        "repeated id": (_patched(data, first_id, "<I", 1), "invalid or repeated chromosome ids"),
        "node too large": (_patched(data, tree_at + 32 + 2, "<H", 900), "larger than the file allows"),
        "no tree": (_patched(data, tree_at, "<I", 0), "no chromosome list"),
        "no index": (_patched(data, index_at, "<I", 0), "no data index"),
        "index entry": (_patched(data, index_at + 52 + 32, "<I", 0xABCDEF), "impossible chromosome positions"),
        "index offset": (_patched(data, index_at + 52 + 16, "<Q", len(data)), "points outside the data"),
    }
    for name, (blob, fragment) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.bw"
        path.write_bytes(blob)
        with pytest.raises(InputError, match=f"{path.name} is truncated or corrupt: .*{fragment}"):
            open_bigwig(path)


def test_multi_level_chromosome_list_is_accepted(tmp_path):
    """UCSC tools write the chromosome list as a tree of small nodes for many contigs (pyBigWig
    writes one node); rebuild a file's list that way and check the layout check follows it."""
    sizes = {f"c{i}": 1000 + i for i in range(10)}
    bw = pyBigWig.open(str(tmp_path / "flat.bw"), "w")
    bw.addHeader(list(sizes.items()), maxZooms=1)
    for i, chrom in enumerate(sizes):
        bw.addEntries([chrom], [0], ends=[500], values=[float(i)])
    bw.close()
    data = bytearray((tmp_path / "flat.bw").read_bytes())
    tree_at = struct.unpack_from("<Q", data, 8)[0]
    _, _, key_size, _, n, _ = struct.unpack_from("<IIIIQQ", data, tree_at)
    leaf_at = tree_at + 32 + 4
    items = sorted(bytes(data[leaf_at + k * (key_size + 8) : leaf_at + (k + 1) * (key_size + 8)]) for k in range(n))
    leaves = [items[i : i + 4] for i in range(0, n, 4)]
    new_tree = len(data)
    first_leaf = new_tree + 32 + 4 + len(leaves) * (key_size + 8)
    root, body = struct.pack("<BBH", 0, 0, len(leaves)), b""
    for leaf in leaves:
        root += leaf[0][:key_size] + struct.pack("<Q", first_leaf + len(body))
        body += struct.pack("<BBH", 1, 0, len(leaf)) + b"".join(leaf)
    data += struct.pack("<IIIIQQ", 0x78CA8C91, 4, key_size, 8, n, 0) + root + body
    struct.pack_into("<Q", data, 8, new_tree)
    (tmp_path / "tree.bw").write_bytes(bytes(data))
    assert track_chrom_sizes(tmp_path / "tree.bw") == sizes
    with open_bigwig(tmp_path / "tree.bw") as h:
        assert [read_values(h, c, 499, 501, sizes[c])[0] for c in sizes] == list(range(10))


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("t.bedGraph", b"track type=bedGraph\nchrA\t0\t100\t1.5\n", "wiggle or bedGraph text"),
        ("t.bg", b"chrA\t0\t100\t1.5\nchrA\t100\t200\t1.7\n", "bedGraph or BED text; convert it with bedGraphToBigWig"),
        ("t.fa", b">chrA\nACGT\n", "is not a bigWig file (it looks like FASTA)"),
        ("t.txt", b"hello\n", "is not a bigWig file (it is a text file)"),
        ("empty.bw", b"", "is empty (0 bytes), not a bigWig file"),
        ("t.bw.gz", gzip.compress(b"chrA\t0\t100\t1.5\n"), "gzip-compressed"),
        ("t.bb", struct.pack("<I", 0x8789F2EB) + bytes(60), "it is a bigBed file"),
        ("short.bw", struct.pack("<I", 0x888FFC26) + bytes(20), "fewer than a bigWig header"),
    ],
)
def test_files_that_are_not_bigwig(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"track file {path}") as err:
        check_tracks_match_genome(SIZES, {"t": str(path)})
    assert fragment in str(err.value)


def test_a_directory_or_missing_file_as_track(tmp_path):
    (tmp_path / "t.bw").mkdir()
    with pytest.raises(InputError, match=r"t\.bw is a directory, not a bigWig file"):
        open_bigwig(tmp_path / "t.bw")
    with pytest.raises(InputError, match=r"nope\.bw does not exist"):
        check_tracks_match_genome(SIZES, {"t": str(tmp_path / "nope.bw")})


# ------------------------------------------------------------ through the command line


def _cli(tmp_path: Path, fasta: Path, track: Path, *args: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "bad.yaml").write_text(
        f"name: bad\nfasta: {fasta}\ntracks:\n  rt: {track}\nblacklist: null\nval_chroms: [chrB]\n"
        "test_chroms: [chrC]\nwindow_length: 4000\nstride: 4000\nmax_shift: 0\ntarget_resolution: 100\n"
        "min_valid_fraction: 0.5\n"
    )
    overrides = ["data=bad", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model.depth=2", "model.pool=4",
                 *LINEAR_OVERRIDES]
    return subprocess.run([EXE, *args, *overrides],
                          check=False, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env=dict(os.environ, HYDRA_FULL_ERROR="0"))


def test_cli_fastq_given_as_genome(tmp_path):
    fastq = tmp_path / "reads.fq"
    fastq.write_text("@read1\nACGT\n+\nIIII\n")
    out = _cli(tmp_path, fastq, _small_bigwig(tmp_path / "t.bw"), "genome")
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"seq-unet genome: error: {fastq} is not a FASTA file (it looks like FASTQ)" in out.stderr
    assert "Traceback" not in out.stderr
    genome_dir = tmp_path / "results" / "bad" / "genome"
    assert not (genome_dir / "genome.fa").exists() and not (genome_dir / "chrom.sizes").exists()
    assert not genome_dir.exists() or not any(p.name.startswith(".genome.fa") for p in genome_dir.iterdir())


def test_cli_damaged_and_truncated_tracks(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", {c: "ACGT" * (n // 4) for c, n in SIZES.items()})
    good = _small_bigwig(tmp_path / "good.bw")
    data = good.read_bytes()
    leaves = _index_leaves(data)
    block = leaves[leaves["c0"] == 1][0]
    bad = bytearray(data)
    mid = int(block["at"] + block["n"] // 2)
    bad[mid : mid + 32] = np.random.default_rng(0).integers(0, 256, 32, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.bw"
    damaged.write_bytes(bytes(bad))
    # the header and index are intact: `genome` passes, `windows` reads chrB's values and stops
    assert _cli(tmp_path, fasta, damaged, "genome").returncode == 0
    out = _cli(tmp_path, fasta, damaged, "windows")
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"seq-unet windows: error: track file {damaged} is corrupt: reading chrB:" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "results" / "bad" / "windows" / "windows.tsv").exists()
    # cut inside its zoom headers (where pyBigWig itself would crash): `genome` refuses it
    cut = tmp_path / "cut.bw"
    cut.write_bytes(data[:80])
    out = _cli(tmp_path, fasta, cut, "genome")
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"seq-unet genome: error: track file {cut} is truncated or corrupt" in out.stderr
    assert "Traceback" not in out.stderr
    genome_dir = tmp_path / "results" / "bad" / "genome"  # the failed step leaves none of its outputs
    assert not (genome_dir / "genome.fa").exists() and not (genome_dir / "genome.fa.fai").exists()

"""Shared fixtures: a tiny synthetic genome with tracks whose values are known."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the suite in pytest-xdist workers, one per core: each worker's torch (and
    # every process it starts, unless a test pins its own count) then uses one thread, so that the
    # workers share the cores instead of oversubscribing them.
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# chrD is shorter than the test window (4000 bp) on purpose
TINY_SIZES = {"chrA": 40_000, "chrB": 24_000, "chrC": 16_000, "chrD": 3_000}
TRACK_BIN = 100


def random_sequence(rng: np.random.Generator, n: int) -> str:
    seq = np.array(list("ACGT"))[rng.integers(0, 4, n)]
    return "".join(seq)


def write_fasta(path: Path, seqs: dict[str, str], line: int = 60, gz: bool = False, crlf: bool = False) -> Path:
    nl = "\r\n" if crlf else "\n"
    text = "".join(
        f">{name} synthetic{nl}" + "".join(s[i : i + line] + nl for i in range(0, len(s), line))
        for name, s in seqs.items()
    )
    if gz:
        with gzip.open(path, "wt", newline="") as fh:
            fh.write(text)
    else:
        path.write_bytes(text.encode())
    return path


def gc_signal(seq: str, bin_size: int, smooth: int = 9) -> np.ndarray:
    """A track with a sequence-dependent value per bin: smoothed GC fraction."""
    codes = np.frombuffer(seq.encode(), dtype=np.uint8)
    gc = np.isin(codes, [ord("G"), ord("C"), ord("g"), ord("c")]).astype(float)
    nb = -(-len(seq) // bin_size)
    per_bin = np.array([gc[i * bin_size : (i + 1) * bin_size].mean() for i in range(nb)])
    kernel = np.ones(smooth) / smooth
    return 1.0 + np.convolve(per_bin, kernel, mode="same")


def write_binned_bigwig(path: Path, sizes: dict[str, int], values: dict[str, np.ndarray], bin_size: int) -> Path:
    """Write bin values (NaN bins skipped, chromosomes absent from ``values`` skipped)."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()), maxZooms=4)
    for chrom, size in sizes.items():
        if chrom not in values:
            continue
        v = values[chrom]
        starts = np.arange(len(v)) * bin_size
        ends = np.minimum(starts + bin_size, size)
        ok = np.isfinite(v)
        if ok.any():
            bw.addEntries([chrom] * int(ok.sum()), starts[ok].tolist(), ends=ends[ok].tolist(),
                          values=v[ok].astype(float).tolist())
    bw.close()
    return path


@pytest.fixture(scope="session")
def tiny_genome(tmp_path_factory) -> dict:
    """A 4-chromosome synthetic genome (gzip FASTA) with two tracks.

    Track ``gc`` is smoothed GC per 100-bp bin with a gap of missing bins on
    chrA; track ``noisy`` is its negative plus noise, absent bins at chrB's end.
    Returns paths and the in-memory sequences and bin values.
    """
    d = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(7)
    seqs = {c: random_sequence(rng, n) for c, n in TINY_SIZES.items()}
    # soft-masked stretch and an N run, as in real assemblies
    a = list(seqs["chrA"])
    a[1000:1200] = [b.lower() for b in a[1000:1200]]
    a[5000:5300] = "N" * 300
    seqs["chrA"] = "".join(a)
    fasta = write_fasta(d / "tiny.fa.gz", seqs, gz=True)
    gc = {c: gc_signal(s, TRACK_BIN) for c, s in seqs.items()}
    gc["chrA"][100:110] = np.nan
    noisy = {c: 3.0 - v + rng.normal(0, 0.01, len(v)) for c, v in gc.items()}
    noisy["chrB"][-20:] = np.nan
    tracks = {
        "gc": write_binned_bigwig(d / "gc.bw", TINY_SIZES, gc, TRACK_BIN),
        "noisy": write_binned_bigwig(d / "noisy.bw", TINY_SIZES, noisy, TRACK_BIN),
    }
    return {"dir": d, "fasta": fasta, "seqs": seqs, "sizes": dict(TINY_SIZES), "tracks": tracks,
            "values": {"gc": gc, "noisy": noisy}}


@pytest.fixture(scope="session")
def tiny_prepared(tiny_genome, tmp_path_factory) -> Path:
    """The tiny genome decompressed and indexed."""
    from seq_unet.io.fasta import prepare_fasta

    out = tmp_path_factory.mktemp("prepared") / "genome.fa"
    prepare_fasta(tiny_genome["fasta"], out)
    return out


# The files that take longest, longest first. Under pytest-xdist (`make test`) whole files go to the
# workers in collection order, so starting these first keeps one of them from running alone at the end.
LONGEST_FIRST = ("test_planted_origins.py", "test_workflow.py", "test_cluster.py", "test_reliability.py",
                 "test_workflow_rerun.py", "test_mechanisms.py", "test_distributed.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))  # stable: the rest keep their order

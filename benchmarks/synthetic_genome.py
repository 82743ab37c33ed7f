"""A synthetic genome with hg38's layout, and two replication-timing-like tracks for it.

    python -m benchmarks.synthetic_genome --scale 0.01 --out results/synth   # 31 Mbp
    python -m benchmarks.synthetic_genome --scale 1 --out /scratch/synth --gzip   # 3.1 Gbp

Nothing here is real data; it exists to run the workflow at human scale (and
fractions of it) without downloading anything. Written under ``--out``:

``genome.fa`` (or ``genome.fa.gz`` with ``--gzip``)
    chr1..chr22, chrX, chrY with the GRCh38 lengths, chrM, then hg38's count of
    unplaced and unlocalised contigs (42 ``chrN_..._random``, 127 ``chrUn_...``)
    with hg38-like names and lengths drawn log-uniformly from 1-200 kb. The
    primary chromosomes carry N-runs where hg38 has its large gaps: a telomere
    cap of 10 kb at each end, a centromere of a few Mb at about hg38's position,
    the short arms of the acrocentric chromosomes and chrY's q12
    heterochromatin (positions and sizes approximate). The sequence comes from
    an order-2 Markov chain (CpG depletion, A/T-run persistence, about 41% GC)
    whose GC content follows the timing domains below (early: GC-richer, as
    isochores are), so GC over tens of kb predicts the tracks in part and a
    model has something to learn.
``early.bw``, ``late.bw``
    Relative copy number (1.0-2.0) in 5-kb bins on the primary chromosomes: an
    early-S-like sample (wide contrast) and a later one (higher, compressed
    values, half its own domain structure). The domain structure is a sum of
    random Gaussian bumps 0.4-0.8 Mb wide. There are no entries (rather than
    NaN) in bins that touch an N-run, in a few random unmeasured stretches per
    chromosome (50-500 kb), on chrM and on the contigs.
``conf/data/<name>.yaml``
    A data config for it (``--config data=<name> conf_dir=<out>/conf`` in the
    workflow): 5-kb targets and 640-kb windows, the shortest windows that are a
    multiple of both the target resolution and the default U-Net's
    downsampling product (16*4*4*4 = 1024). Below scale 0.0026 chr1 is shorter
    than 640 kb and the windows step refuses them: there, override
    ``data.window_length`` (with ``experiment=scale``, any multiple of 5 kb fits).

``--scale`` shrinks every chromosome, gap, contig, domain width and unmeasured
stretch by the same factor; contigs keep at least 2 kb (or their full length),
telomere caps and other gaps at least 1 kb and domains at least 4 bins, so every
piece stays present at any scale (1.0 is the full 3.1 Gbp). The bins stay 5 kb.
The genome is written chromosome by chromosome, in chunks of 4.8 Mbp: memory
does not grow with the genome (nor, beyond a few MB of bin arrays, with the
longest chromosome). The Markov chain runs as 1-kb segments in parallel (each
starting from a random context), which is what makes numpy fast here.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# GRCh38 primary assembly: chromosome lengths as in UCSC hg38.chrom.sizes
# (https://hgdownload.soe.ucsc.edu/goldenPath/hg38/bigZips/hg38.chrom.sizes).
HG38_CHROM_SIZES = {
    "chr1": 248_956_422, "chr2": 242_193_529, "chr3": 198_295_559, "chr4": 190_214_555,
    "chr5": 181_538_259, "chr6": 170_805_979, "chr7": 159_345_973, "chr8": 145_138_636,
    "chr9": 138_394_717, "chr10": 133_797_422, "chr11": 135_086_622, "chr12": 133_275_309,
    "chr13": 114_364_328, "chr14": 107_043_718, "chr15": 101_991_189, "chr16": 90_338_345,
    "chr17": 83_257_441, "chr18": 80_373_285, "chr19": 58_617_616, "chr20": 64_444_167,
    "chr21": 46_709_983, "chr22": 50_818_468, "chrX": 156_040_895, "chrY": 57_227_415,
}
CHRM_SIZE = 16_569

# Centromeres: (midpoint, length) in Mb, roughly the acen bands of UCSC hg38 cytoBand,
# rounded; good to about a Mb, not coordinates to rely on.
CENTROMERES_MB = {
    "chr1": (123.4, 3.4), "chr2": (93.9, 4.2), "chr3": (90.9, 3.0), "chr4": (50.0, 3.6),
    "chr5": (48.8, 3.0), "chr6": (60.6, 3.0), "chr7": (60.1, 3.0), "chr8": (45.2, 3.0),
    "chr9": (43.9, 3.0), "chr10": (39.8, 3.0), "chr11": (53.4, 3.0), "chr12": (35.5, 3.0),
    "chr13": (17.7, 2.4), "chr14": (17.2, 2.0), "chr15": (19.0, 3.0), "chr16": (36.8, 3.0),
    "chr17": (25.1, 3.0), "chr18": (18.5, 3.0), "chr19": (26.2, 3.0), "chr20": (28.1, 3.0),
    "chr21": (12.0, 2.0), "chr22": (15.6, 3.0), "chrX": (59.6, 2.9), "chrY": (10.4, 0.3),
}
# Other large N blocks of hg38, (start, end) in Mb, approximate: the acrocentric short
# arms and the heterochromatin of chrY q12.
LARGE_GAPS_MB = {
    "chr13": (0.0, 16.0), "chr14": (0.0, 16.0), "chr15": (0.0, 17.0), "chr21": (0.0, 5.0),
    "chr22": (0.0, 10.5), "chrY": (26.6, 56.7),
}
# hg38's unlocalised (chrN_..._random) contigs per chromosome (42 in all) and its 127
# unplaced chrUn contigs. Their lengths are drawn (log-uniform over CONTIG_RANGE), not hg38's.
RANDOM_CONTIGS = {"chr1": 9, "chr2": 2, "chr3": 1, "chr4": 2, "chr5": 1, "chr9": 5, "chr11": 1, "chr14": 3,
                  "chr15": 1, "chr16": 2, "chr17": 5, "chr18": 1, "chr22": 8, "chrY": 1}
UNPLACED_CONTIGS = 127
CONTIG_RANGE = (1_000, 200_000)

TELOMERE = 10_000
BIN = 5_000
TARGET_RESOLUTION = 5_000
WINDOW = 640_000              # lcm(5000, 1024): the default U-Net's downsampling product is 1024
DOMAIN_WIDTH = (400_000, 800_000)
UNMEASURED = (50_000, 500_000)
UNMEASURED_PER_MB = 1 / 20    # random unmeasured stretches per Mb of the full-size chromosome
CONTIG_FLOOR, GAP_FLOOR, DOMAIN_FLOOR_BINS = 2_000, 1_000, 4   # chromosomes: at least 10 gap floors
SEGMENT = 1_000               # parallel Markov segments
CHUNK_BINS = 960              # 4.8 Mbp per chunk: a multiple of the line width, segment and bin
LINE = 60
GC_MEAN, GC_SWING, GC_LEVELS = 0.45, 0.04, 11   # chain parameter (CpG depletion and A/T runs bring GC to ~41%)
LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)
N_CODE = 4


@dataclass(frozen=True)
class Contig:
    name: str
    length: int
    gaps: tuple[tuple[int, int], ...] = ()   # N-runs [start, end), sorted, disjoint
    measured: bool = False                   # has timing values (the primary chromosomes)


def _scaled(x: float, scale: float, floor: int) -> int:
    return max(int(round(x * scale)), floor)


def _merge(gaps: list[tuple[int, int]], length: int) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for s, e in sorted((max(0, s), min(length, e)) for s, e in gaps):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return tuple((s, e) for s, e in out)


def chromosome(name: str, scale: float) -> Contig:
    """One primary chromosome at ``scale``: its length and N-runs."""
    length = _scaled(HG38_CHROM_SIZES[name], scale, 10 * GAP_FLOOR)
    cap = _scaled(TELOMERE, scale, GAP_FLOOR)
    gaps = [(0, cap), (length - cap, length)]
    mid, width = CENTROMERES_MB[name]
    mid, width = _scaled(mid * 1e6, scale, 0), _scaled(width * 1e6, scale, GAP_FLOOR)
    gaps.append((mid - width // 2, mid - width // 2 + width))
    if name in LARGE_GAPS_MB:
        start, end = LARGE_GAPS_MB[name]
        gaps.append((_scaled(start * 1e6, scale, 0), _scaled(end * 1e6, scale, GAP_FLOOR)))
    return Contig(name, length, _merge(gaps, length), measured=True)


def layout(scale: float, seed: int = 0) -> list[Contig]:
    """Every sequence of the genome in FASTA order: chr1..chr22, chrX, chrY, chrM, random, chrUn."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    contigs = [chromosome(name, scale) for name in HG38_CHROM_SIZES]
    contigs.append(Contig("chrM", _scaled(CHRM_SIZE, scale, CONTIG_FLOOR)))
    rng = np.random.default_rng([seed, 1])
    lo, hi = np.log(CONTIG_RANGE[0]), np.log(CONTIG_RANGE[1])
    parents = [chrom for chrom, n in RANDOM_CONTIGS.items() for _ in range(n)]
    names = [f"{chrom}_KI270{700 + i:03d}v1_random" for i, chrom in enumerate(parents)]
    names += [f"chrUn_{'GL000' if i < 20 else 'KI270'}{200 + i:03d}v1" for i in range(UNPLACED_CONTIGS)]
    for name, full in zip(names, np.exp(rng.uniform(lo, hi, len(names)))):
        contigs.append(Contig(name, _scaled(full, scale, min(int(full), CONTIG_FLOOR))))
    return contigs


def transition_table(gc: float) -> np.ndarray:
    """Order-2 chain: ``(16, 4)`` probabilities of the next base (ACGT) after each pair of bases."""
    table = np.tile([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2], (16, 1))
    for pair in range(16):
        first, last = divmod(pair, 4)
        if last == 1:
            table[pair, 2] *= 0.25           # CpG depletion
        if first == last in (0, 3):
            table[pair, last] *= 1.6         # poly-A / poly-T runs
    return table / table.sum(1, keepdims=True)


def cumulative_tables() -> np.ndarray:
    """``(3, GC_LEVELS * 16)``: the chain's cumulative thresholds, indexed by level * 16 + pair."""
    levels = np.linspace(GC_MEAN - GC_SWING, GC_MEAN + GC_SWING, GC_LEVELS)
    cum = np.cumsum(np.stack([transition_table(g) for g in levels]), axis=2)
    return np.ascontiguousarray(cum[:, :, :3].reshape(-1, 3).T)


def markov_codes(levels: np.ndarray, tables: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Base codes 0-3 for one ``SEGMENT`` per entry of ``levels`` (GC level of each segment)."""
    n = len(levels)
    u = rng.random((SEGMENT, n))
    out = np.empty((SEGMENT, n), dtype=np.uint8)
    pair = rng.integers(0, 16, n)
    base_key = levels.astype(np.int64) * 16
    c0, c1, c2 = tables
    for j in range(SEGMENT):
        key = base_key + pair
        uj = u[j]
        code = (uj > c0[key]).astype(np.uint8) + (uj > c1[key]) + (uj > c2[key])
        out[j] = code
        pair = ((pair << 2) | code) & 15
    return out.T.reshape(-1)


def smooth_bumps(n_bins: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A standardised sum of random Gaussian bumps, ``DOMAIN_WIDTH`` wide (times ``scale``), per bin."""
    lo, hi = (max(w * scale / BIN, DOMAIN_FLOOR_BINS) for w in DOMAIN_WIDTH)
    k = max(2, int(np.ceil(n_bins / lo)))
    centres = rng.uniform(-lo, n_bins + lo, k)
    widths = rng.uniform(lo, hi, k)
    heights = rng.normal(0, 1, k)
    field = np.zeros(n_bins)
    x = np.arange(n_bins)
    for c, w, h in zip(centres, widths, heights):
        a, b = max(0, int(c - 2 * w)), min(n_bins, int(c + 2 * w) + 1)
        if b > a:
            field[a:b] += h * np.exp(-0.5 * ((x[a:b] - c) / (w / 2)) ** 2)
    return (field - field.mean()) / (field.std() + 1e-9)


def measured_bins(contig: Contig, n_bins: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Bins with a value: none touching an N-run, none in a few random unmeasured stretches."""
    keep = np.ones(n_bins, dtype=bool)
    for s, e in contig.gaps:
        keep[s // BIN : (e - 1) // BIN + 1] = False
    for _ in range(rng.poisson(UNMEASURED_PER_MB * contig.length / scale / 1e6)):
        start = rng.uniform(0, contig.length)
        end = start + rng.uniform(*UNMEASURED) * scale
        keep[int(np.ceil(start / BIN - 0.5)) : int(np.ceil(end / BIN - 0.5))] = False   # bins centred inside
    return keep


def chromosome_tracks(contig: Contig, scale: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The GC level per bin, and per track (bin indices, values)."""
    n_bins = -(-contig.length // BIN)
    z, own, gc_own = (smooth_bumps(n_bins, scale, rng) for _ in range(3))
    gc = np.tanh((z + 0.7 * gc_own) / np.sqrt(1.49))   # GC follows the early domains in part
    levels = np.rint((gc + 1) / 2 * (GC_LEVELS - 1)).astype(np.int64)
    early = 1.5 + 0.45 * np.tanh(z) + rng.normal(0, 0.03, n_bins)
    late = 1.6 + 0.35 * np.tanh((z + own) / np.sqrt(2)) + rng.normal(0, 0.03, n_bins)
    tracks = {}
    for name, values in (("early", early), ("late", late)):
        bins = np.flatnonzero(measured_bins(contig, n_bins, scale, rng))
        tracks[name] = (bins, np.round(np.clip(values[bins], 1.0, 2.0), 3))
    return levels, tracks


def write_sequence(fh, contig: Contig, levels: np.ndarray, tables: np.ndarray, rng: np.random.Generator) -> None:
    """The record of ``contig``, chunk by chunk; ``levels``: the GC level of each bin."""
    fh.write(f">{contig.name}\n".encode())
    chunk = CHUNK_BINS * BIN
    for start in range(0, contig.length, chunk):
        end = min(start + chunk, contig.length)
        per_segment = np.repeat(levels[start // BIN : -(-end // BIN)], BIN // SEGMENT)
        codes = markov_codes(per_segment, tables, rng)[: end - start]
        for s, e in contig.gaps:
            if s < end and e > start:
                codes[max(s, start) - start : min(e, end) - start] = N_CODE
        text = LETTERS[codes]
        full = len(text) // LINE * LINE
        lines = np.empty((full // LINE, LINE + 1), dtype=np.uint8)
        lines[:, :LINE] = text[:full].reshape(-1, LINE)
        lines[:, LINE] = ord("\n")
        fh.write(lines.tobytes())
        if full < len(text):
            fh.write(text[full:].tobytes() + b"\n")


def write_config(out: Path, name: str, fasta: Path, tracks: dict[str, Path], scale: float, seed: int) -> Path:
    path = out / "conf" / "data" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    track_lines = "".join(f"  {t}: {p.resolve()}\n" for t, p in tracks.items())
    path.write_text(
        f"# Synthetic genome with hg38's layout, not real data:\n"
        f"#   python -m benchmarks.synthetic_genome --scale {scale:g} --seed {seed} --out {out}\n"
        f"name: {name}\n"
        f"fasta: {fasta.resolve()}\n"
        f"tracks:\n{track_lines}"
        "ucsc_assembly: null                      # synthetic: an assembly hub with a .2bit\n"
        "blacklist: null\n"
        "val_chroms: [chr2]\n"
        "test_chroms: [chr1, chr3]\n"
        f"window_length: {WINDOW}                    # lcm(target_resolution, 1024 of the default U-Net)\n"
        f"stride: {WINDOW // 2}\n"
        f"max_shift: {WINDOW // 4}\n"
        f"target_resolution: {TARGET_RESOLUTION}                  # the tracks' 5-kb bins\n"
        "min_valid_fraction: 0.5\n"
    )
    return path


def generate(out: Path, scale: float, seed: int = 0, compress: bool = False, name: str | None = None) -> dict:
    """Write the genome, its two tracks and its data config under ``out``; returns a summary."""
    import pyBigWig

    out.mkdir(parents=True, exist_ok=True)
    name = name or f"synth_hg38_{scale:g}".replace(".", "p")
    contigs = layout(scale, seed)
    fasta = out / ("genome.fa.gz" if compress else "genome.fa")
    paths = {t: out / f"{t}.bw" for t in ("early", "late")}
    tables = cumulative_tables()
    writers = {t: pyBigWig.open(str(p), "w") for t, p in paths.items()}
    header = [(c.name, c.length) for c in contigs]
    for bw in writers.values():
        bw.addHeader(header)
    opener = (lambda p: gzip.open(p, "wb", compresslevel=1)) if compress else (lambda p: open(p, "wb"))
    with opener(fasta) as fh:
        for i, contig in enumerate(contigs):
            rng = np.random.default_rng([seed, 2, i])
            if contig.measured:
                levels, tracks = chromosome_tracks(contig, scale, rng)
                for t, (bins, values) in tracks.items():
                    if not len(bins):
                        continue
                    ends = np.minimum((bins + 1) * BIN, contig.length)
                    writers[t].addEntries([contig.name] * len(bins), (bins * BIN).tolist(), ends=ends.tolist(),
                                          values=values.tolist())
            else:
                levels = np.full(-(-contig.length // BIN), GC_LEVELS // 2)
            write_sequence(fh, contig, levels, tables, rng)
    for bw in writers.values():
        bw.close()
    config = write_config(out, name, fasta, paths, scale, seed)
    return {"name": name, "fasta": str(fasta), "tracks": {t: str(p) for t, p in paths.items()},
            "config": str(config), "conf_dir": str(out / "conf"), "sequences": len(contigs),
            "bases": sum(c.length for c in contigs), "n_bases": sum(e - s for c in contigs for s, e in c.gaps)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.01, help="fraction of hg38's size, in (0, 1]")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gzip", action="store_true", help="write genome.fa.gz (gzip level 1) instead of genome.fa")
    p.add_argument("--name", help="data config name (default synth_hg38_<scale>)")
    args = p.parse_args()
    t0 = time.perf_counter()
    summary = generate(args.out, args.scale, args.seed, args.gzip, args.name)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

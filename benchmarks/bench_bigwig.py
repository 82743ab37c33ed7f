"""Per-base bigWig writing: seq-unet's run-length writer against one value per base.

    python -m benchmarks.bench_bigwig                      # 100 Mbp smooth synthetic track
    python -m benchmarks.bench_bigwig --mbp 10 --precision 0.001
    python -m benchmarks.bench_bigwig --track results/sacCer3/predictions/W303.bw   # a real prediction

The synthetic track looks like replication timing: a smooth profile between
about 0.9 and 2.1 (Gaussian-smoothed noise at 1-kb knots, sigma 20 kb, linearly
interpolated to every base), split into chromosomes of ``--chrom-mbp``. Both
writers get the same float32 values, chromosome by chromosome, and write zoom
levels (``maxZooms=10``):

* baseline: ``pyBigWig`` ``addEntries(chrom, 0, values=array, span=1, step=1)``,
  one value per base;
* seq-unet: :class:`seq_unet.io.bigwig_write.BigWigWriter` (values rounded to
  ``--precision``, runs of equal values as bedGraph entries, temporary file renamed).

Both files are then read back with pybigtools (an independent implementation)
to check the largest absolute error. Printed: seconds, Mbp/s and file size of
each, the speed and size ratios, and the maximum error against the bound
``precision / 2``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pybigtools
import pyBigWig

from seq_unet.io.bigwig_write import DEFAULT_PRECISION, BigWigWriter


def synthetic(length: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth replication-timing-like profile of ``length`` bases (float32)."""
    knots = length // 1000 + 2
    sigma = 20  # knots (20 kb)
    kernel = np.exp(-0.5 * (np.arange(-4 * sigma, 4 * sigma + 1) / sigma) ** 2)
    smooth = np.convolve(rng.normal(size=knots + 8 * sigma), kernel / kernel.sum(), mode="valid")
    smooth = 1.5 + 0.6 * smooth / np.abs(smooth).max()
    return np.interp(np.arange(length), np.arange(knots) * 1000, smooth).astype(np.float32)


def from_bigwig(path: str) -> dict[str, np.ndarray]:
    bw = pybigtools.open(path)
    out = {c: np.asarray(bw.values(c, 0, n, fillna=None), dtype=np.float32) for c, n in bw.chroms().items()}
    bw.close()
    return out


def write_per_base(path: Path, tracks: dict[str, np.ndarray]) -> None:
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(c, len(v)) for c, v in tracks.items()], maxZooms=10)
    for c, v in tracks.items():
        bw.addEntries(c, 0, values=v, span=1, step=1)
    bw.close()


def write_runs(path: Path, tracks: dict[str, np.ndarray], precision: float) -> None:
    with BigWigWriter(path, {c: len(v) for c, v in tracks.items()}, precision=precision, max_zooms=10) as w:
        for c, v in tracks.items():
            w.add(c, v)


def max_error(path: Path, tracks: dict[str, np.ndarray]) -> float:
    """Largest |read - written| over bases that have a value; also checks no-data matches."""
    bw = pybigtools.open(str(path))
    worst = 0.0
    for c, want in tracks.items():
        got = np.asarray(bw.values(c, 0, len(want), fillna=None), dtype=np.float64)
        nan = np.isnan(want)
        if not np.array_equal(np.isnan(got), nan):
            raise SystemExit(f"{path}: bases without a value differ from the input on {c}")
        worst = max(worst, float(np.abs(got[~nan] - want[~nan]).max(initial=0.0)))
    bw.close()
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mbp", type=float, default=100.0, help="synthetic genome size (Mbp)")
    ap.add_argument("--chrom-mbp", type=float, default=25.0, help="synthetic chromosome size (Mbp)")
    ap.add_argument("--precision", type=float, default=DEFAULT_PRECISION)
    ap.add_argument("--track", help="use the values of this per-base bigWig instead of a synthetic track")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.track:
        tracks = from_bigwig(args.track)
        source = args.track
    else:
        rng = np.random.default_rng(args.seed)
        total, chrom = int(args.mbp * 1e6), int(args.chrom_mbp * 1e6)
        sizes = [min(chrom, total - s) for s in range(0, total, chrom)]
        tracks = {f"chr{i + 1}": synthetic(n, rng) for i, n in enumerate(sizes)}
        source = f"synthetic smooth track, {len(tracks)} chromosomes"
    bases = sum(len(v) for v in tracks.values())
    print(f"{source}: {bases / 1e6:.1f} Mbp, precision {args.precision}")

    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for name, write, path in (("pyBigWig per base", write_per_base, Path(tmp) / "per_base.bw"),
                                  ("seq-unet runs", lambda p, t: write_runs(p, t, args.precision),
                                   Path(tmp) / "runs.bw")):
            t0 = time.perf_counter()
            write(path, tracks)
            seconds = time.perf_counter() - t0
            rows[name] = (seconds, path.stat().st_size, max_error(path, tracks))
            print(f"{name:18s} {seconds:8.2f} s  {bases / seconds / 1e6:8.1f} Mbp/s  "
                  f"{rows[name][1] / 1e6:9.2f} MB  max error {rows[name][2]:.2e}")
    (t_base, s_base, _), (t_runs, s_runs, err) = rows.values()
    verdict = "ok" if err <= args.precision / 2 + 1e-6 else "EXCEEDED"
    print(f"speed ratio {t_base / t_runs:.1f}x, size ratio {s_base / s_runs:.1f}x, "
          f"max error {err:.5f} (bound {args.precision / 2:.5f}: {verdict})")


if __name__ == "__main__":
    main()

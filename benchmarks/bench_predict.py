"""Genome-wide prediction streams: peak memory against genome size.

    python -m benchmarks.bench_predict                       # 10 vs 100 Mbp, default model
    python -m benchmarks.bench_predict --sizes 10 50 model.depth=4
    python -m benchmarks.bench_predict --sizes 10 --mc-samples 0 8 --project-gbp 3.1   # CPU throughput

For each genome size a synthetic genome of random sequence is written as
chromosomes of ``--chrom-mbp`` (10 Mbp: one chromosome; 100 Mbp: ten), and a
fresh process runs :func:`seq_unet.predict.genome.predict_genome` on it
with a randomly initialised U-Net (``conf/model/unet.yaml`` plus overrides; the
weights do not matter for memory or speed) over the default 128-kb windows,
reverse-complement averaging and running-mean smoothing on, and the bigWig
written. Printed per size: seconds, bases per second, peak resident memory of
the process and the bigWig's size, then the 100/10 ratios. Prediction holds one
chromosome's output at a time, so peak memory should follow the longest
chromosome, not the genome.

With ``--mc-samples 0 N ...`` every size is predicted once per setting (0: one
deterministic pass; N: N Monte Carlo dropout passes, mean and sd written), and
``--project-gbp G`` prints the time a genome of G Gbp would take at each
setting's measured throughput (the largest size's), on this machine and device.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_model import model_config, module_settings

REPO = Path(__file__).resolve().parent.parent


def write_genome(path: Path, mbp: float, chrom_mbp: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    total, chrom = int(mbp * 1e6), int(chrom_mbp * 1e6)
    with open(path, "wb") as fh:
        for i, start in enumerate(range(0, total, chrom)):
            seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, min(chrom, total - start))]
            fh.write(f">chr{i + 1}\n".encode())
            for line in range(0, len(seq), 80):
                fh.write(seq[line : line + 80].tobytes() + b"\n")


def make_checkpoint(path: Path, overrides: list[str], window: int, resolution: int) -> None:
    import pytorch_lightning as pl
    import torch

    from seq_unet.lit import SeqUNetModule

    torch.manual_seed(0)
    module = SeqUNetModule(["signal"], window, resolution, [1.5], [0.3], model=model_config(overrides),
                           **module_settings())
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": pl.__version__}, path)


def peak_rss() -> int:
    """This process's peak resident memory in bytes: ``VmHWM``, the high-water mark of its own address space.
    Not ``ru_maxrss``, which on Linux also keeps the peak of the process it was forked from (here the parent,
    which held the generated genome)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(args: argparse.Namespace) -> None:
    from seq_unet.predict.genome import predict_genome

    t0 = time.perf_counter()
    paths = predict_genome(args.ckpt, args.fasta, args.out, batch_size=args.batch, device=args.device,
                           mc_samples=args.mc)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss(),
                      "bigwig_bytes": paths["signal"].stat().st_size}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=float, nargs="+", default=[10, 100], help="genome sizes (Mbp)")
    p.add_argument("--chrom-mbp", type=float, default=10.0)
    p.add_argument("--window", type=int, default=128_000)
    p.add_argument("--resolution", type=int, default=1000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--mc-samples", type=int, nargs="+", default=[0], help="Monte Carlo passes (0: deterministic)")
    p.add_argument("--project-gbp", type=float, help="print the projected time for a genome of this size")
    p.add_argument("--mc", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--fasta", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="model options, e.g. model.depth=4")
    args = p.parse_args()
    if args.child:
        child(args)
        return

    from seq_unet.io.fasta import prepare_fasta

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "model.ckpt"
        make_checkpoint(ckpt, args.overrides, args.window, args.resolution)
        for mc in args.mc_samples:
            for mbp in args.sizes:
                raw, fasta = tmp / f"raw{mbp:g}.fa", tmp / f"genome{mbp:g}.fa"
                write_genome(raw, mbp, args.chrom_mbp)
                prepare_fasta(raw, fasta)
                raw.unlink()
                cmd = [sys.executable, "-m", "benchmarks.bench_predict", "--child", "--ckpt", str(ckpt),
                       "--fasta", str(fasta), "--out", str(tmp / f"pred{mbp:g}_{mc}"), "--batch", str(args.batch),
                       "--device", args.device, "--mc", str(mc)]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
                if out.returncode:
                    raise SystemExit(out.stderr)
                row = {"mbp": mbp, "mc": mc, **json.loads(out.stdout.strip().splitlines()[-1])}
                rows.append(row)
                print(f"{mbp:6g} Mbp ({int(np.ceil(mbp / args.chrom_mbp))} chromosomes), mc_samples {mc}: "
                      f"{row['seconds']:7.1f} s, {mbp * 1e6 / row['seconds'] / 1e3:7.0f} kbp/s, peak RSS "
                      f"{row['peak_rss'] / 2**30:.2f} GiB, bigWig {row['bigwig_bytes'] / 1e3:.0f} kB", flush=True)
                fasta.unlink()
    for mc in args.mc_samples:
        these = [r for r in rows if r["mc"] == mc]
        first, last = these[0], these[-1]
        if len(these) > 1:
            print(f"mc_samples {mc}, {last['mbp']:g} / {first['mbp']:g} Mbp: "
                  f"genome x{last['mbp'] / first['mbp']:.0f}, time x{last['seconds'] / first['seconds']:.1f}, "
                  f"peak RSS x{last['peak_rss'] / first['peak_rss']:.2f}")
        if args.project_gbp:
            rate = last["mbp"] * 1e6 / last["seconds"]
            print(f"mc_samples {mc}: {rate / 1e3:.0f} kbp/s -> {args.project_gbp:g} Gbp in "
                  f"{args.project_gbp * 1e9 / rate / 3600:.2f} h")


if __name__ == "__main__":
    main()

"""Genome-wide prediction on an assembly of many small contigs: time and forward passes.

    python -m benchmarks.bench_contigs                       # 300 contigs of 1-50 kb, 128-kb windows
    python -m benchmarks.bench_contigs --contigs 1000 --device cuda model.depth=4

Human assemblies carry hundreds of unplaced, random and alt contigs, most of
them shorter than one prediction window. This writes a synthetic genome of
``--contigs`` contigs of random sequence of 1 to ``--max-kb`` kb (every tenth
with a run of N), after two chromosomes longer than a window, and runs
:func:`seq_unet.predict.genome.predict_genome` on it with a randomly
initialised U-Net (``conf/model/unet.yaml`` plus overrides; the weights do not
matter for speed), counting the forward passes (calls of the batch function).
Printed: seconds, windows, forward passes and bases per second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_predict import make_checkpoint


def contig_sizes(n: int, max_kb: float, window: int, seed: int = 0) -> dict[str, int]:
    """Two chromosomes longer than a window (2.5 and 1.3 windows), then ``n`` contigs of 1 to ``max_kb`` kb."""
    rng = np.random.default_rng(seed)
    sizes = {"chr1": int(2.5 * window), "chr2": int(1.3 * window)}
    sizes.update({f"chrUn_contig{i}": int(s) for i, s in enumerate(rng.integers(1000, int(max_kb * 1000) + 1, n))})
    return sizes


def write_genome(path: Path, sizes: dict[str, int], seed: int = 0) -> None:
    """Random sequence; every tenth contig has a run of N in its middle."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        for i, (name, size) in enumerate(sizes.items()):
            seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, size)].copy()
            if i % 10 == 5:
                seq[size // 3 : size // 3 + size // 5] = ord("N")
            fh.write(f">{name}\n".encode())
            for line in range(0, size, 80):
                fh.write(seq[line : line + 80].tobytes() + b"\n")


def timed_prediction(ckpt: Path, fasta: Path, out: Path, batch: int, device: str) -> dict:
    """Seconds and forward passes of one prediction."""
    import seq_unet.predict.chromosomes as chromosomes
    from seq_unet.predict.genome import predict_genome

    calls, windows = [0], [0]
    inner = chromosomes.predict_batch

    def counted(model, codes, *args, **kwargs):
        calls[0] += 1
        windows[0] += len(codes)
        return inner(model, codes, *args, **kwargs)

    chromosomes.predict_batch = counted
    try:
        t0 = time.perf_counter()
        predict_genome(ckpt, fasta, out, batch_size=batch, device=device, mask_unknown=True)
        seconds = time.perf_counter() - t0
    finally:
        chromosomes.predict_batch = inner
    return {"seconds": seconds, "forward_passes": calls[0], "windows": windows[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contigs", type=int, default=300)
    p.add_argument("--max-kb", type=float, default=50.0)
    p.add_argument("--window", type=int, default=128_000)
    p.add_argument("--resolution", type=int, default=1000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("overrides", nargs="*", help="model options, e.g. model.depth=4")
    args = p.parse_args()

    from seq_unet.io.fasta import prepare_fasta

    sizes = contig_sizes(args.contigs, args.max_kb, args.window)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt, raw, fasta = tmp / "model.ckpt", tmp / "raw.fa", tmp / "genome.fa"
        make_checkpoint(ckpt, args.overrides, args.window, args.resolution)
        write_genome(raw, sizes)
        prepare_fasta(raw, fasta)
        row = timed_prediction(ckpt, fasta, tmp / "pred", args.batch, args.device)
    total = sum(sizes.values())
    print(f"{len(sizes)} sequences ({args.contigs} contigs of 1-{args.max_kb:g} kb, 2 chromosomes), {total / 1e6:.2f} "
          f"Mbp, {args.window}-bp windows, batch {args.batch}: {row['seconds']:.1f} s, {row['windows']} windows in "
          f"{row['forward_passes']} forward passes, {total / row['seconds'] / 1e3:.0f} kbp/s")


if __name__ == "__main__":
    main()

"""The chromosome loop of genome-wide prediction: every chromosome, in FASTA
order, cut into overlapping windows (:mod:`~seq_unet.predict.tiling`) that are
predicted in batches (:mod:`~seq_unet.predict.forward`) and stitched into the
chromosome's tracks, which are written to the bigWigs as soon as they are done.

Memory is bounded by one chromosome's output buffer (``n_tracks x length``
float32, twice with Monte Carlo dropout) plus one batch.

The dropout masks of a batch are drawn from a seed made of the run's seed, the
chromosome's name and the batch's place on it, so a Monte Carlo prediction does
not depend on which process predicts which batch, nor on the other chromosomes.

With N processes (see :mod:`~seq_unet.predict.processes`), on every chromosome
process ``r`` predicts batches ``r, r + N, ...`` of the same batches a single
process would form, and sends the parts of the windows it keeps to process 0
(:mod:`~seq_unet.predict.exchange`), which writes the bigWigs: the output is the
single-process output, bit for bit (on devices of one kind). Process 0 holds
one chromosome's output buffer, the others their share of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from seq_unet.io.bases import UNKNOWN
from seq_unet.io.bigwig_write import BigWigWriter
from seq_unet.io.genome import Genome
from seq_unet.io.names import is_initiation, is_std
from seq_unet.lit import SeqUNetModule
from seq_unet.predict.exchange import add_shares, kept, send_share
from seq_unet.predict.forward import predict_batch
from seq_unet.predict.tiling import contribution, place, plan_windows

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What every process of a prediction needs (plain values: sent to spawned processes; not frozen,
    as Lightning's launcher rebuilds dataclasses among the arguments)."""

    ckpt: list
    fasta: str
    paths: dict
    length: int
    crop: int
    off: int
    width: int
    batch_size: int
    precision: float
    std_precision: float
    reverse_complement: bool
    mask_unknown: bool
    mc_samples: int
    seed: int
    rows: list
    rate_precision: float
    blend: int = 0

    @property
    def rates(self) -> bool:
        return any(is_initiation(n) for n in self.paths)

    def precision_of(self, name: str) -> float:
        if is_std(name):
            return self.std_precision
        return self.rate_precision if is_initiation(name) else self.precision


class Progress:
    """Log bases done, bases per second and time left every ``every`` seconds."""

    def __init__(self, total: int, every: float = 10.0):
        self.total, self.every, self.done = total, every, 0
        self.t0 = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            left = (self.total - self.done) / max(rate, 1e-9)
            log.info("predicted %d / %d bp (%.1f%%), %.0f bp/s, %.0f s left",
                     self.done, self.total, 100 * self.done / self.total, rate, left)


def batch_seed(seed: int, chrom: str, index: int) -> int:
    """The seed of the dropout masks of batch ``index`` of chromosome ``chrom``."""
    name = int.from_bytes(hashlib.md5(chrom.encode()).digest()[:8], "little")
    return int(np.random.SeedSequence([seed, name, index]).generate_state(1, np.uint64)[0])


def predict_share(job: Job, model: list[SeqUNetModule], dev: torch.device, rank: int = 0, world_size: int = 1,
                   group=None) -> None:
    """Predict batches ``rank, rank + world_size, ...`` of every chromosome; process 0 gathers and writes.

    Processes other than 0 send process 0 the kept part of each of their windows,
    chromosome by chromosome, in the order of their batches.
    """
    genome = Genome(job.fasta)
    off, length = job.off, job.length
    names = list(job.paths)
    progress = Progress(sum(genome.sizes.values())) if rank == 0 else None
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(BigWigWriter(path, genome.sizes, job.precision_of(n)))
                   for n, path in job.paths.items()] if rank == 0 else []
        for chrom, size in genome.sizes.items():
            # virtual chromosome with `off` unknown bases at each end, so every real base
            # falls in the predicted centre of some window
            pieces = plan_windows(size + 2 * off, length, job.crop, job.blend)
            batches = [pieces[b : b + job.batch_size] for b in range(0, len(pieces), job.batch_size)]
            if rank == 0:  # windows add their weighted parts (cross-fades) to zeros
                buf = np.zeros((len(names), size + 2 * off), dtype=np.float32)
            else:  # the weighted parts of this process's windows, one after another
                buf = np.empty((len(names), kept(batches[rank::world_size])), dtype=np.float32)
                cursor = 0
            for i in range(rank, len(batches), world_size):
                batch = batches[i]
                out = _batch_outputs(job, model, dev, genome, chrom, size, batch, i)
                for p, o in zip(batch, out):
                    if rank == 0:
                        place(buf, p, o)
                    else:
                        part = contribution(p, o)
                        buf[:, cursor : cursor + part.shape[-1]] = part
                        cursor += part.shape[-1]
                if progress is not None:  # the other processes predict the batches after this one meanwhile
                    done = [p for b in batches[i : i + world_size] for p in b]
                    progress.update(sum(p.keep_to - p.keep_from for p in done) - _overhang(done, off, size))
            if world_size > 1 and rank > 0:
                send_share(buf, group)
                continue
            add_shares(buf, batches, world_size, group)
            values = buf[:, off : off + size]
            if job.mask_unknown:
                values[:, genome.codes(chrom, 0, size) == UNKNOWN] = np.nan
            for w, v in zip(writers, values):
                w.add(chrom, v)


def _batch_outputs(job: Job, model: list[SeqUNetModule], dev: torch.device, genome: Genome, chrom: str,
                   size: int, batch: list, i: int) -> np.ndarray:
    """The output rows (``job.rows``) of the windows of ``batch``, the ``i``-th batch of chromosome ``chrom``."""
    off, length = job.off, job.length
    codes = np.stack([genome.codes(chrom, p.start - off, p.start - off + length) for p in batch])
    # the chromosome's own extent in each window: smoothing stops at its ends
    inside = np.clip([[off - p.start, off + size - p.start] for p in batch], 0, length)
    if job.mc_samples > 0:
        torch.manual_seed(batch_seed(job.seed, chrom, i))
    mean, sd = predict_batch(model, codes, dev, job.reverse_complement, job.mc_samples, job.width, inside,
                             np.array([p.start - off for p in batch]), size, job.rates)
    return (mean if sd is None else np.concatenate([mean, sd], axis=1))[:, job.rows]


def _overhang(pieces, off: int, size: int) -> int:
    """Kept bases of ``pieces`` that lie in the virtual padding beyond the chromosome ends."""
    return sum(max(0, min(p.keep_to, off) - p.keep_from) + max(0, p.keep_to - max(p.keep_from, off + size))
               for p in pieces)

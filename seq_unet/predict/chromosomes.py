"""The chromosome loop of genome-wide prediction: every chromosome cut into
overlapping windows (:mod:`~seq_unet.predict.tiling`) that are predicted in
batches (:mod:`~seq_unet.predict.forward`) and stitched into the chromosome's
tracks, which are written to the bigWigs, in FASTA order, as soon as they are
done.

A chromosome longer than one window fills batches of its own windows. The
contigs that fit in one window (an assembly's many small unplaced, random and
alt contigs) share batches: ``batch_size`` of them, in FASTA order, per forward
pass, rather than one padded window per pass. In evaluation mode a window's
prediction does not depend on the other windows of its batch.

A chromosome longer than :data:`SEGMENT` bases is stitched and written in
segments: consecutive batches of its windows, about ``SEGMENT`` bases of output
each. When a segment's windows are done, its bases are final up to where the
next segment's first window begins to contribute (cross-fades included); they
are written, and only the rest is kept for the next segment. Memory is so
bounded by one segment's output buffer (``n_tracks x SEGMENT`` float32, twice
with Monte Carlo dropout) plus one batch, or the outputs of a few batches of
short contigs, whatever the length of the chromosomes.

The dropout masks of a batch are drawn from a seed made of the run's seed, the
chromosome's name and the batch's place on it (a batch of short contigs: its
first contig's name and place 0), so a Monte Carlo prediction does not depend
on which process predicts which batch, nor on the chromosomes longer than a
window around it.

With N processes (see :mod:`~seq_unet.predict.processes`), on every chromosome
process ``r`` predicts batches ``r, r + N, ...`` of the same batches a single
process would form (N batches of short contigs at a time), and sends the parts
of the windows it keeps to process 0 (:mod:`~seq_unet.predict.exchange`), which
writes the bigWigs: the output is the single-process output, bit for bit (on
devices of one kind). Process 0 holds one chromosome's output buffer, the
others their share of it.
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
from seq_unet.predict.tiling import Piece, contribution, place, plan_windows

log = logging.getLogger(__name__)

SEGMENT = 32_000_000  # bases of a long chromosome's output stitched and written at a time (whole batches)


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
    segment: int = SEGMENT  # a long chromosome is stitched and written about this many bases at a time

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
    """The seed of the dropout masks of batch ``index`` of chromosome ``chrom`` (a batch of short contigs:
    batch 0 of its first contig)."""
    name = int.from_bytes(hashlib.md5(chrom.encode()).digest()[:8], "little")
    return int(np.random.SeedSequence([seed, name, index]).generate_state(1, np.uint64)[0])


@dataclass(frozen=True)
class Window:
    """One window of a chromosome of ``size`` bases; ``piece`` is on the virtual chromosome with ``off``
    unknown bases at each end (see :func:`predict_share`)."""

    chrom: str
    size: int
    piece: Piece


@dataclass
class Block:
    """Batches that every process takes its share of before process 0 gathers them: the windows of one
    chromosome longer than a window (or of one segment of it), or up to ``world_size`` batches of contigs of
    one window each."""

    batches: list[list[Window]]
    seeds: list[int]  # the dropout seed of each batch
    until: int | None = None  # a segment before the last of its chromosome: where the next segment's windows
    # begin to contribute (virtual coordinates); its output is final up to there. None: the block ends its
    # chromosomes.

    def sizes(self) -> dict[str, int]:
        """The block's chromosomes and their sizes, in the order of its windows."""
        return {w.chrom: w.size for b in self.batches for w in b}

    def spans(self) -> dict[str, tuple[int, int]]:
        """Per chromosome, the bases (virtual coordinates) that the block's windows contribute to."""
        out = {}
        for w in (w for b in self.batches for w in b):
            lo, hi = w.piece.span
            a, b = out.get(w.chrom, (lo, hi))
            out[w.chrom] = (min(a, lo), max(b, hi))
        return out


def plan_blocks(sizes: dict[str, int], job: Job, world_size: int = 1) -> list[Block]:
    """The blocks of a prediction, in the order in which the first chromosome of each comes in ``sizes``.

    A chromosome longer than one window is cut into batches of ``job.batch_size`` windows of its own, in
    blocks of about ``job.segment`` (:data:`SEGMENT`) bases of output (whole batches; the dropout seeds
    count the batches of the whole chromosome). Contigs that fit in one window (the many small contigs of
    an assembly) fill batches of ``job.batch_size`` together, in FASTA order; a block holds ``world_size``
    such batches, so that the processes share them. The batches, and so the output, do not depend on ``world_size``.
    """
    off, length, n = job.off, job.length, job.batch_size
    # virtual chromosomes with `off` unknown bases at each end, so every real base
    # falls in the predicted centre of some window
    pieces = {c: plan_windows(s + 2 * off, length, job.crop, job.blend) for c, s in sizes.items()}
    short = [c for c, p in pieces.items() if len(p) == 1]
    packed = [[Window(c, sizes[c], pieces[c][0]) for c in short[i : i + n]] for i in range(0, len(short), n)]
    batch_of = {w.chrom: i for i, b in enumerate(packed) for w in b}
    blocks, next_packed = [], 0
    for chrom, size in sizes.items():
        if chrom not in batch_of:
            windows = [Window(chrom, size, p) for p in pieces[chrom]]
            batches = [windows[b : b + n] for b in range(0, len(windows), n)]
            seeds = [batch_seed(job.seed, chrom, i) for i in range(len(batches))]
            per_block = max(1, job.segment // (n * (length - 2 * job.crop)))
            cuts = list(range(0, len(batches), per_block))
            for i, b in enumerate(cuts):
                last = i == len(cuts) - 1
                blocks.append(Block(batches[b : b + per_block], seeds[b : b + per_block],
                                    None if last else batches[b + per_block][0].piece.span[0]))
        elif batch_of[chrom] >= next_packed:
            group = packed[next_packed : next_packed + world_size]
            blocks.append(Block(group, [batch_seed(job.seed, b[0].chrom, 0) for b in group]))
            next_packed += len(group)
    return blocks


def predict_share(job: Job, model: list[SeqUNetModule], dev: torch.device, rank: int = 0, world_size: int = 1,
                  group=None) -> None:
    """Predict batches ``rank, rank + world_size, ...`` of every block (see :func:`plan_blocks`); process 0
    gathers and writes the chromosomes, in FASTA order, as soon as they are done.

    Processes other than 0 send process 0 the kept part of each of their windows,
    block by block, in the order of their batches.
    """
    genome = Genome(job.fasta)
    order = list(genome.sizes)
    progress = Progress(sum(genome.sizes.values())) if rank == 0 else None
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(BigWigWriter(path, genome.sizes, job.precision_of(n)))
                   for n, path in job.paths.items()] if rank == 0 else []
        ready, complete, started, written = {}, set(), set(), 0  # parts not yet written; their chromosomes
        carry = None
        for block in plan_blocks(genome.sizes, job, world_size):
            parts, carry = _predict_block(job, model, dev, genome, block, (rank, world_size, group), progress,
                                          carry)
            for chrom, start, values, last in parts:
                ready.setdefault(chrom, []).append((start, values))
                if last:
                    complete.add(chrom)
            while written < len(order) and order[written] in ready:  # in FASTA order
                chrom = order[written]
                got = ready.pop(chrom)
                if chrom in complete and chrom not in started and len(got) == 1:
                    for w, v in zip(writers, got[0][1]):  # a whole chromosome
                        w.add(chrom, v)
                else:  # a long chromosome, segment by segment
                    started.add(chrom)
                    for start, values in got:
                        for w, v in zip(writers, values):
                            w.add_part(chrom, start, v)
                if chrom not in complete:
                    break
                written += 1


def _predict_block(job: Job, model: list[SeqUNetModule], dev: torch.device, genome: Genome, block: Block,
                   share: tuple, progress: Progress | None, carry: tuple | None) -> tuple[list, tuple | None]:
    """This process's batches of ``block``. Process 0 returns the final parts of the block's chromosomes,
    ``(chrom, start, rows, last)`` with the output rows of ``chrom:[start, start + width)`` (NaN where masked;
    ``last``: the part ends the chromosome), and what the next segment of a long chromosome adds to
    (``carry``: chromosome, virtual start, rows; or None). The other processes send their parts to process 0
    and return nothing."""
    rank, world_size, group = share
    off, n_rows = job.off, len(job.paths)
    if rank == 0:  # windows add their weighted parts (cross-fades) to zeros, or to the previous segment's carry
        spans = block.spans()
        origin = {c: lo for c, (lo, _) in spans.items()}
        bufs = {c: np.zeros((n_rows, hi - lo), dtype=np.float32) for c, (lo, hi) in spans.items()}
        if carry is not None:
            chrom, lo, rows = carry
            bufs[chrom][:, lo - origin[chrom] : lo - origin[chrom] + rows.shape[-1]] += rows
    else:  # the weighted parts of this process's windows, one after another
        buf = np.empty((n_rows, kept(block.batches[rank::world_size])), dtype=np.float32)
        cursor = 0
    for i in range(rank, len(block.batches), world_size):
        batch = block.batches[i]
        out = _batch_outputs(job, model, dev, genome, batch, block.seeds[i])
        for w, o in zip(batch, out):
            if rank == 0:
                place(bufs[w.chrom], w.piece, o, origin[w.chrom])
            else:
                part = contribution(w.piece, o)
                buf[:, cursor : cursor + part.shape[-1]] = part
                cursor += part.shape[-1]
        if progress is not None:  # the other processes predict the batches after this one meanwhile
            windows = [w for b in block.batches[i : i + world_size] for w in b]
            progress.update(sum(w.piece.keep_to - w.piece.keep_from for w in windows) - _overhang(windows, off))
    if world_size > 1 and rank > 0:
        send_share(buf, group)
        return [], None
    add_shares(bufs, origin, block.batches, world_size, group)
    sizes, parts, carry = block.sizes(), [], None
    for c, b in bufs.items():
        lo, hi = origin[c], origin[c] + b.shape[-1]
        if block.until is not None:  # bases from `until` on get more from the next segment's windows
            carry, hi = (c, block.until, b[:, block.until - lo :].copy()), block.until
        # the chromosome's own bases (its virtual chromosome has `off` unknown bases at each end)
        a, z = max(lo, off), min(hi, off + sizes[c])
        values = b[:, a - lo : z - lo]
        if job.mask_unknown:
            values[:, genome.codes(c, a - off, z - off) == UNKNOWN] = np.nan
        parts.append((c, a - off, values, block.until is None))
    return parts, carry


def _batch_outputs(job: Job, model: list[SeqUNetModule], dev: torch.device, genome: Genome,
                   batch: list[Window], seed: int) -> np.ndarray:
    """The output rows (``job.rows``) of the windows of ``batch``, with dropout masks drawn from ``seed``."""
    off, length = job.off, job.length
    starts = np.array([w.piece.start - off for w in batch])  # chromosome coordinates
    sizes = np.array([w.size for w in batch])
    codes = np.stack([genome.codes(w.chrom, s, s + length) for w, s in zip(batch, starts)])
    # each window's chromosome's own extent in it: smoothing stops at its ends
    inside = np.clip(np.stack([-starts, sizes - starts], axis=1), 0, length)
    if job.mc_samples > 0:
        torch.manual_seed(seed)
    mean, sd = predict_batch(model, codes, dev, job.reverse_complement, job.mc_samples, job.width, inside,
                             starts, sizes, job.rates)
    return (mean if sd is None else np.concatenate([mean, sd], axis=1))[:, job.rows]


def _overhang(windows: list[Window], off: int) -> int:
    """Kept bases of ``windows`` that lie in the virtual padding beyond their chromosomes' ends."""
    return sum(max(0, min(p.keep_to, off) - p.keep_from) + max(0, p.keep_to - max(p.keep_from, off + w.size))
               for w in windows for p in [w.piece])

"""The windows' outputs moving between the processes of a multi-process
prediction (see :mod:`~seq_unet.predict.processes`).

On every block of batches (a chromosome, or batches of short contigs: see
:func:`~seq_unet.predict.chromosomes.plan_blocks`) each process other than 0
sends process 0 the weighted parts of its windows (cross-fades included), one
after another in the order of its batches, as CPU float32 tensors over
torch.distributed (gloo, whatever the device), in messages of at most 256 MB;
process 0 receives them process by process and adds them to the tracks of the
windows' chromosomes.
"""

from __future__ import annotations

import numpy as np
import torch


def send_share(buf: np.ndarray, group) -> None:
    """A process other than 0: send process 0 ``buf``, the parts of its windows of one block (see
    :func:`add_shares`)."""
    import torch.distributed as dist

    for part in _parts(torch.from_numpy(buf)):
        dist.send(part, dst=0, group=group)


def add_shares(bufs: dict[str, np.ndarray], origin: dict[str, int], batches: list[list], world_size: int,
               group) -> None:
    """Process 0: receive every other process's parts of its windows (in the order of its batches)
    and add them to their chromosomes' tracks ``bufs`` (chromosome name -> ``(rows, bases)``, holding the
    chromosome's bases from ``origin[name]`` on)."""
    import torch.distributed as dist

    rows = len(next(iter(bufs.values())))
    for r in range(1, world_size):
        share = [w for b in batches[r::world_size] for w in b]
        got = torch.empty((rows, kept(batches[r::world_size])), dtype=torch.float32)
        for part in _parts(got):
            dist.recv(part, src=r, group=group)
        got, cursor = got.numpy(), 0
        for w in share:
            lo, hi = (x - origin[w.chrom] for x in w.piece.span)
            # at most two windows meet at a base, and a + b == b + a: the same bits in any order
            bufs[w.chrom][:, lo:hi] += got[:, cursor : cursor + hi - lo]
            cursor += hi - lo


def kept(batches) -> int:
    """Bases the windows (:class:`~seq_unet.predict.chromosomes.Window`) of ``batches`` contribute to,
    cross-fades included."""
    return sum(w.piece.span[1] - w.piece.span[0] for b in batches for w in b)


def _parts(t: torch.Tensor, size: int = 1 << 26) -> list[torch.Tensor]:
    """Contiguous pieces of at most ``size`` values of a 2-D tensor, row by row (messages of at most 256 MB)."""
    return [row[lo : lo + size] for row in t for lo in range(0, row.numel(), size)]

"""Multi-process genome-wide prediction.

With ``devices = N > 1`` the prediction runs in N processes (Lightning Fabric,
``ddp_spawn``: torch.distributed over gloo on CPU, NCCL on GPUs, one GPU per
process), each running the chromosome loop (:mod:`~seq_unet.predict.chromosomes`)
on its share of the batches; process 0 gathers the windows' outputs
(:mod:`~seq_unet.predict.exchange`) and writes the bigWigs. The output is the
single-process output, bit for bit (on devices of one kind). The processes' log
records come to the launching process through a queue; an
:class:`~seq_unet.errors.InputError` raised in one of them is raised there with
its message alone, and so is a full disk or another write error.
"""

from __future__ import annotations

import logging
import logging.handlers

import torch

from seq_unet.errors import InputError
from seq_unet.predict.chromosomes import Job, predict_share
from seq_unet.predict.forward import load_members, resolve_device


def fabric_accelerator(device: str) -> str:
    """The Fabric accelerator of a multi-process prediction on ``device`` (``auto``, ``cpu``, ``cuda``)."""
    return "cuda" if resolve_device(device).type == "cuda" else "cpu"


def launch(job: Job, device: str, devices: int) -> None:
    """Run :func:`~seq_unet.predict.chromosomes.predict_share` in ``devices`` spawned processes; their log
    records come here."""
    import torch.multiprocessing as mp
    from lightning_fabric import Fabric
    from torch.multiprocessing.spawn import ProcessRaisedException

    accelerator = fabric_accelerator(device)
    if accelerator == "cuda" and devices > torch.cuda.device_count():
        raise InputError(f"predict.devices={devices}, but only {torch.cuda.device_count()} GPUs are visible")
    fabric = Fabric(accelerator=accelerator, devices=devices, strategy="ddp_spawn", precision="32-true")
    queue = mp.get_context("spawn").Queue()
    listener = logging.handlers.QueueListener(queue, _Relay())
    listener.start()
    try:
        fabric.launch(_worker, job, queue, logging.getLogger().getEffectiveLevel())
    except ProcessRaisedException as exc:
        message = str(exc)
        marker = "InputError: "  # a seq_unet.errors.InputError raised in a process: its message alone
        if marker in message:
            raise InputError(message.rsplit(marker, 1)[1].strip()) from None
        raise
    finally:
        listener.stop()
        queue.close()


class _Relay(logging.Handler):
    """Hand a record from a spawned process to this process's logger of the same name (its handlers, its file)."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def _worker(fabric, job: Job, queue, level: int) -> None:
    """One process of a multi-process prediction (started by Fabric)."""
    import torch.distributed as dist

    from seq_unet.io.atomic import WRITE_ERRORS

    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(level)
    rank, world_size = fabric.global_rank, fabric.world_size
    # the windows' outputs travel between processes as CPU tensors (gloo), whatever the device
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    try:
        model = load_members(job.ckpt, fabric.device)
        predict_share(job, model, fabric.device, rank, world_size, group)
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        raise InputError(f"cannot write {exc.filename or 'an output file'}: {exc.strerror}") from exc
    fabric.barrier()

"""Genome-wide prediction: stream chromosomes through the model in batches of
overlapping windows and write one per-base bigWig per track.

Memory is bounded by one chromosome's output buffer (``n_tracks x length``
float32, twice with Monte Carlo dropout) plus one batch; chromosomes are written
to the bigWigs as soon as they are done, in FASTA order.

With ``mc_samples = N > 0`` dropout stays active and every window is predicted
N times; the mean is written as ``<track>.bw`` and the per-base standard
deviation as ``<track>.std.bw`` (Monte Carlo dropout, an estimate of the
model's uncertainty). A network with ``valid`` padding predicts only the centre
of each window, so windows reach ``offset`` bases past the chromosome ends
(unknown bases) and overlap by at least ``2 * offset``.

The dropout masks of a batch are drawn from a seed made of the run's seed, the
chromosome's name and the batch's place on it, so a Monte Carlo prediction does
not depend on which process predicts which batch, nor on the other chromosomes.

With ``devices = N > 1`` the prediction runs in N processes (Lightning Fabric,
``ddp_spawn``: torch.distributed over gloo on CPU, NCCL on GPUs, one GPU per
process). On every chromosome process ``r`` predicts batches ``r, r + N, ...``
of the same batches a single process would form, and sends the parts of the
windows it keeps to process 0, which writes the bigWigs: the output is the
single-process output, bit for bit (on devices of one kind). Process 0 holds
one chromosome's output buffer, the others their share of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import logging.handlers
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seq_unet.checkpoint import load_module
from seq_unet.errors import InputError
from seq_unet.io.genome import UNKNOWN, Genome, prepare_fasta
from seq_unet.io.names import bigwig, initiation_name, is_initiation, is_std, std_name
from seq_unet.io.tracks import DEFAULT_PRECISION, BigWigWriter
from seq_unet.lit import SeqUNetModule
from seq_unet.model.inputs import encode_input, reverse_complement_input
from seq_unet.predict.tiling import contribution, place, plan_windows

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(ckpt: str | Path, device: torch.device) -> SeqUNetModule:
    """Load a trained checkpoint for inference (safely: weights and plain values only), with a clear error."""
    return load_module(ckpt, device)


def checkpoint_list(ckpt) -> list[str]:
    """One checkpoint path, or the members of a seed ensemble (a list), as a list of strings."""
    paths = [str(c) for c in ckpt] if isinstance(ckpt, (list, tuple)) else [str(ckpt)]
    if not paths:
        raise InputError("predict.ckpt names no checkpoint")
    return paths


def load_members(ckpts: list[str], device: torch.device) -> list[SeqUNetModule]:
    """The models of ``ckpts``; the members of an ensemble must predict the same tracks from the same windows."""
    models = [load_model(c, device) for c in ckpts]
    first = models[0].hparams
    for c, m in zip(ckpts[1:], models[1:]):
        h = m.hparams
        for key in ("tracks", "window_length", "target_resolution"):
            if list(np.atleast_1d(h[key])) != list(np.atleast_1d(first[key])):
                raise InputError(f"ensemble members differ: {c} has {key} {h[key]}, {ckpts[0]} has {first[key]}")
        if getattr(m, "kinetic", False) != getattr(models[0], "kinetic", False):
            raise InputError(f"ensemble members differ: {c} and {ckpts[0]} have different model.head")
    return models


@torch.inference_mode()
def predict_batch(model: SeqUNetModule | list[SeqUNetModule], codes: np.ndarray, device: torch.device,
                  reverse_complement: bool = True,
                  mc_samples: int = 0, smooth: int = 1, inside: np.ndarray | None = None,
                  starts: np.ndarray | None = None, chrom_size: int | None = None,
                  rates: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-base predictions for base codes ``(batch, length)`` -> ``(mean, std)``, each ``(batch, n_tracks, length)``.

    With ``reverse_complement`` each prediction is averaged with the prediction
    for the reverse-complement strand (flipped back), as the signal is
    strand-blind. With ``smooth > 1`` each prediction is then a centred running
    mean over ``smooth`` bases (see :func:`running_mean`) that stays within each
    window's ``inside`` ``(batch, 2)`` range ``[from, to)`` of real chromosome
    (window coordinates; default: the whole window). With ``mc_samples > 0``
    that is repeated with dropout active and ``std`` is the per-base standard
    deviation over the samples (else None).
    Positions a ``valid``-padding network does not predict (the window's first
    and last ``offset`` bases) are NaN.

    A model with a position channel needs each window's chromosome coordinate
    ``starts`` ``(batch,)`` and the chromosome's length. With ``rates`` (kinetic
    head), ``mean`` also holds the initiation-rate channels after the tracks
    (per minute and kb, averaged over strands and passes like the tracks).

    Given a list of models (a seed ensemble), every member predicts (each with
    ``mc_samples`` passes, or one deterministic pass): ``mean`` is the mean over
    all members and passes, ``std`` their standard deviation (over the members
    alone when ``mc_samples`` is 0).
    """
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    n_tracks = len(models[0].hparams.tracks)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    inputs = {}  # one input per position-channel setting of the members

    def once(member) -> torch.Tensor:
        scale = getattr(member, "position_scale", None)
        if scale not in inputs:
            inputs[scale] = torch.from_numpy(encode_input(codes, scale, starts, chrom_size)).to(device)
        return _one_pass(member, inputs[scale], codes.shape[-1], reverse_complement, smooth, inside, rates)

    with autocast:
        samples = []
        for member in models:
            if mc_samples > 0:
                member.net.mc_dropout(True)
                try:
                    samples += [once(member) for _ in range(mc_samples)]
                finally:
                    member.net.mc_dropout(False)
            else:
                samples.append(once(member))
        if len(samples) > 1:
            stacked = torch.stack(samples)
            y, sd = stacked.mean(0), stacked[:, :, :n_tracks].std(0, correction=1)
        else:
            y, sd = samples[0], (torch.zeros_like(samples[0][:, :n_tracks]) if mc_samples > 0 else None)
    return _full_length(y, codes.shape[-1]), (None if sd is None else _full_length(sd, codes.shape[-1]))


def _one_pass(member: SeqUNetModule, x: torch.Tensor, length: int, reverse_complement: bool, smooth: int,
              inside: np.ndarray | None, rates: bool) -> torch.Tensor:
    """One member's prediction for input ``x`` of windows of ``length`` bases (see :func:`predict_batch`)."""
    def outputs(inp: torch.Tensor) -> torch.Tensor:
        if rates:
            return member.predict_outputs(inp, rates=True).float()
        return member.predict_values(inp).float()

    y = outputs(x)
    if reverse_complement:
        y = (y + outputs(reverse_complement_input(x)).flip(2)) / 2
    if smooth <= 1:
        return y
    off = (length - y.shape[-1]) // 2  # output position j is window position j + off
    bounds = None if inside is None else torch.as_tensor(np.asarray(inside), dtype=torch.long) - off
    return running_mean(y, smooth, bounds)


def running_mean(y: torch.Tensor, width: int, bounds: torch.Tensor | None = None) -> torch.Tensor:
    """Centred mean over ``width`` positions (odd; ``width <= 1``: unchanged) along the last axis.

    Args:
        y: ``(batch, channels, n)``.
        width: positions averaged.
        bounds: ``(batch, 2)`` int64, the ``[from, to)`` range of real sequence in
            each row (default: all of it); a mean never mixes in positions outside
            it, so near a chromosome end it is over the positions available.
            Values outside the range are not meaningful.

    Computed from a float64 cumulative sum (one pass, no rounding drift along long windows).
    """
    if width <= 1:
        return y
    b, ch, n = y.shape
    half = width // 2
    if bounds is None:
        bounds = torch.tensor([[0, n]], dtype=torch.long).expand(b, 2)
    bounds = bounds.to(y.device).clamp(0, n)
    c = torch.nn.functional.pad(torch.cumsum(y.double(), dim=-1), (1, 0))
    i = torch.arange(n, device=y.device)
    lo = torch.maximum(i - half, bounds[:, :1])  # within [0, n] as the bounds are
    hi = torch.minimum(i + half + 1, bounds[:, 1:])
    total = c.gather(-1, hi[:, None].expand(b, ch, n)) - c.gather(-1, lo[:, None].expand(b, ch, n))
    return (total / (hi - lo).clamp(min=1)[:, None]).to(y.dtype)  # outside the range: any finite value


def _full_length(y: torch.Tensor, length: int) -> np.ndarray:
    """Pad a centred output back to the input length with NaN."""
    y = y.cpu().numpy()
    off = (length - y.shape[-1]) // 2
    if off == 0:
        return y
    out = np.full(y.shape[:-1] + (length,), np.nan, dtype=y.dtype)
    out[..., off : off + y.shape[-1]] = y
    return out


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


def predict_genome(ckpt: str | Path, fasta: str | Path, out_dir: str | Path, window_length: int | None = None,
                   crop: int | None = None, batch_size: int = 8, precision: float = DEFAULT_PRECISION,
                   reverse_complement: bool = True, mask_unknown: bool = False,
                   device: str = "auto", mc_samples: int = 0, seed: int = 0,
                   smooth: int | str = "auto", std_precision: float | None = None,
                   devices: int = 1, rate_precision: float = 0.001, blend: int | str = "auto") -> dict[str, Path]:
    """Predict every base of every chromosome of ``fasta`` and write ``<out_dir>/<track>.bw``.

    Args:
        ckpt: trained checkpoint, or a list of them: a seed ensemble, whose members'
            predictions are averaged per base (and their spread joins the sd tracks).
        fasta: the genome: an indexed FASTA, or any plain or gzip FASTA, which is then
            prepared and indexed as ``<out_dir>/genome/genome.fa`` first.
        out_dir: output folder.
        window_length: prediction window; default the training window.
        crop: bases dropped at each inner window edge; default ``window_length // 8``
            (at least what :func:`window_crop` says the geometry needs).
        batch_size: windows per forward pass.
        precision: bigWig values are rounded to this step (max error ``precision / 2``).
        std_precision: the same for the Monte Carlo sd tracks, whose values are
            small; default ``precision / 10``.
        reverse_complement: average with the reverse-complement prediction.
        mask_unknown: write no value where the DNA is unknown (N); otherwise predict there too.
        device: ``auto``, ``cpu``, ``cuda``, ...
        mc_samples: Monte Carlo dropout passes (0: one deterministic pass).
        seed: seeds the dropout masks, so Monte Carlo predictions are reproducible.
        smooth: write each base's centred running mean over this many bases
            (rounded up to odd); ``"auto"``: the model's training resolution (the
            loss only constrains bin means, so the raw per-base output carries
            base-to-base jitter the training never saw); 0 or 1: raw output.
        devices: processes predicting in parallel (see the module docstring): CPU
            processes with ``device="cpu"``, else that many GPUs (``device`` ``cuda``
            or ``auto``). The output does not depend on it.
        rate_precision: rounding step of the initiation-rate tracks (per minute and kb).
        blend: bases over which neighbouring windows cross-fade (see :mod:`~seq_unet.predict.tiling`);
            ``"auto"``: a sixteenth of the window; 0: hard cuts.

    Returns:
        The written bigWig path per track, per ``<track>.initiation`` for a kinetic
        model, and per ``<track>.std`` with ``mc_samples`` or an ensemble.
    """
    devices = _checked_devices(devices, device)
    dev = resolve_device(device) if devices == 1 else torch.device("cpu")  # devices > 1: the workers' own
    ckpts = checkpoint_list(ckpt)
    members = load_members(ckpts, dev)
    model = members[0]
    length = int(window_length or model.hparams.window_length)
    off = _aligned_offset(members, length)
    width = _smooth_width(smooth, int(model.hparams.target_resolution))
    blend = blend_width(blend, length)
    crop = max(window_crop(m, length, width, crop, blend) for m in members)
    tracks = list(model.hparams.tracks)
    out_dir = Path(out_dir)
    names, rows = output_rows(model, mc_samples, len(members))
    job = _Job(ckpt=ckpts, fasta=str(_indexed(fasta, out_dir)), paths={n: out_dir / bigwig(n) for n in names},
               length=length, crop=crop, off=off, width=width, batch_size=int(batch_size), precision=precision,
               std_precision=precision / 10 if std_precision is None else std_precision,
               reverse_complement=reverse_complement, mask_unknown=mask_unknown, mc_samples=int(mc_samples),
               seed=int(seed), rows=rows, rate_precision=rate_precision, blend=blend)
    where = dev if devices == 1 else f"{devices} processes ({_accelerator(device)})"
    _log_plan(job, len(tracks), len(members), where)
    if devices == 1:
        _predict_share(job, members, dev)
    else:
        del model, members
        _launch(job, device, devices)
    return dict(job.paths)


def _checked_devices(devices: int, device: str) -> int:
    """``predict.devices`` as a number, refused where it cannot be met with ``predict.device``."""
    devices = int(devices)
    if devices < 1:
        raise InputError(f"predict.devices must be at least 1, not {devices}")
    if devices > 1 and ":" in str(device):
        raise InputError(f"predict.device={device} names one device; with predict.devices={devices} use "
                         "predict.device=cuda (GPUs 0..N-1, or those CUDA_VISIBLE_DEVICES lists), cpu or auto")
    return devices


def _aligned_offset(members: list[SeqUNetModule], length: int) -> int:
    """The output offset of ``length``-bp windows, which every member of an ensemble must share."""
    try:
        off = max(m.net.geometry.offset(length) for m in members)
        if any(m.net.geometry.offset(length) != off for m in members):
            raise ValueError("the ensemble members' outputs are not aligned (model.padding differs)")
    except ValueError as exc:
        raise InputError(f"predict.window_length: {exc}") from exc
    return off


def _log_plan(job: _Job, n_tracks: int, n_members: int, where) -> None:
    genome = Genome(job.fasta)
    log.info("predicting %d tracks on %d chromosomes (%d bp) with %d-bp windows, crop %d, output offset %d, "
             "running mean over %d bp, %s, %s, on %s", n_tracks, len(genome.sizes), sum(genome.sizes.values()),
             job.length, job.crop, job.off, job.width,
             f"{job.mc_samples} Monte Carlo dropout samples" if job.mc_samples > 0 else "dropout off",
             f"an ensemble of {n_members} models" if n_members > 1 else "one model", where)


@dataclass
class _Job:
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


def output_rows(model, mc_samples: int, members: int = 1) -> tuple[list[str], list[int]]:
    """Output names (``<track>``, ``<track>.initiation``, ``<track>.std``) and, for each, its row in the
    stacked (mean, sd) output of :func:`predict_batch` (``rates=True`` for a kinetic model)."""
    tracks = list(model.hparams.tracks)
    names, rows = list(tracks), list(range(len(tracks)))
    n_rates = 0
    if getattr(model, "kinetic", False):
        n_rates = model.head.n_channels
        names += [initiation_name(t) for t in tracks]
        rows += [len(tracks) + (i if n_rates > 1 else 0) for i in range(len(tracks))]
    if mc_samples > 0 or members > 1:
        names += [std_name(t) for t in tracks]
        rows += [len(tracks) + n_rates + i for i in range(len(tracks))]
    return names, rows


def window_crop(model, length: int, width: int, crop: int | None = None, blend: int = 0) -> int:
    """Bases dropped at each inner window edge: ``crop`` (default ``length // 8``), but at least what the
    model's geometry needs: the output offset of a ``valid``-padding network, or the kinetic head's reach,
    plus half the smoothing span (a kept base's running mean must be computed from trusted bases), plus
    half the cross-fade between windows (blended bases lie that far past the kept part)."""
    off = model.net.geometry.offset(length)
    need = max(off, getattr(model, "context", 0)) + width // 2 + blend // 2
    crop = max(length // 8 if crop is None else int(crop), need)
    if 2 * crop >= length:
        raise InputError(f"a crop of {crop} bp at each window edge leaves nothing of a {length}-bp window; "
                         f"use a longer predict.window_length (at least {2 * need + 1}) or a smaller predict.crop")
    return crop


def batch_seed(seed: int, chrom: str, index: int) -> int:
    """The seed of the dropout masks of batch ``index`` of chromosome ``chrom``."""
    name = int.from_bytes(hashlib.md5(chrom.encode()).digest()[:8], "little")
    return int(np.random.SeedSequence([seed, name, index]).generate_state(1, np.uint64)[0])


def _predict_share(job: _Job, model: list[SeqUNetModule], dev: torch.device, rank: int = 0, world_size: int = 1,
                   group=None) -> None:
    """Predict batches ``rank, rank + world_size, ...`` of every chromosome; process 0 gathers and writes.

    Processes other than 0 send process 0 the kept part of each of their windows,
    chromosome by chromosome, in the order of their batches.
    """
    import torch.distributed as dist

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
                buf = np.empty((len(names), _kept(batches[rank::world_size])), dtype=np.float32)
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
                for part in _parts(torch.from_numpy(buf)):
                    dist.send(part, dst=0, group=group)
                continue
            _add_shares(buf, batches, world_size, group)
            values = buf[:, off : off + size]
            if job.mask_unknown:
                values[:, genome.codes(chrom, 0, size) == UNKNOWN] = np.nan
            for w, v in zip(writers, values):
                w.add(chrom, v)


def _batch_outputs(job: _Job, model: list[SeqUNetModule], dev: torch.device, genome: Genome, chrom: str,
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


def _add_shares(buf: np.ndarray, batches: list[list], world_size: int, group) -> None:
    """Process 0: receive every other process's parts of its windows (in the order of its batches)
    and add them to the chromosome's ``buf``."""
    import torch.distributed as dist

    for r in range(1, world_size):
        share = [p for b in batches[r::world_size] for p in b]
        got = torch.empty((len(buf), _kept(batches[r::world_size])), dtype=torch.float32)
        for part in _parts(got):
            dist.recv(part, src=r, group=group)
        got, cursor = got.numpy(), 0
        for p in share:
            lo, hi = p.span
            # at most two windows meet at a base, and a + b == b + a: the same bits in any order
            buf[:, lo:hi] += got[:, cursor : cursor + hi - lo]
            cursor += hi - lo


def _kept(batches) -> int:
    """Bases the windows of ``batches`` contribute to, cross-fades included."""
    return sum(p.span[1] - p.span[0] for b in batches for p in b)


def _parts(t: torch.Tensor, size: int = 1 << 26) -> list[torch.Tensor]:
    """Contiguous pieces of at most ``size`` values of a 2-D tensor, row by row (messages of at most 256 MB)."""
    return [row[lo : lo + size] for row in t for lo in range(0, row.numel(), size)]


def _accelerator(device: str) -> str:
    """The Fabric accelerator of a multi-process prediction on ``device`` (``auto``, ``cpu``, ``cuda``)."""
    return "cuda" if resolve_device(device).type == "cuda" else "cpu"


def _launch(job: _Job, device: str, devices: int) -> None:
    """Run :func:`_predict_share` in ``devices`` spawned processes; their log records come here."""
    import torch.multiprocessing as mp
    from lightning_fabric import Fabric
    from torch.multiprocessing.spawn import ProcessRaisedException

    accelerator = _accelerator(device)
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


def _worker(fabric, job: _Job, queue, level: int) -> None:
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
        _predict_share(job, model, fabric.device, rank, world_size, group)
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        raise InputError(f"cannot write {exc.filename or 'an output file'}: {exc.strerror}") from exc
    fabric.barrier()


def _indexed(fasta: str | Path, out_dir: str | Path) -> Path:
    """``fasta`` if it has a ``.fai`` index, else a prepared, indexed copy in ``out_dir/genome/``."""
    fasta = Path(fasta)
    if Path(f"{fasta}.fai").exists():
        return fasta
    dst = Path(out_dir) / "genome" / "genome.fa"
    log.info("%s has no .fai index: preparing an indexed copy as %s", fasta, dst)
    prepare_fasta(fasta, dst)
    return dst


def _width_option(value: int | str, auto: int, name: str) -> int:
    """A width in bases from an option that is ``"auto"`` (then ``auto``) or a number >= 0."""
    if value == "auto":
        return auto
    try:
        width = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be 'auto' or a number of bases, not {value!r}") from None
    if width < 0:
        raise InputError(f"{name} must be >= 0, not {width}")
    return width


def blend_width(blend: int | str, length: int) -> int:
    """The cross-fade width from the ``blend`` option: ``"auto"`` is ``length // 16``."""
    return _width_option(blend, length // 16, "predict.blend")


def _smooth_width(smooth: int | str, resolution: int) -> int:
    """Odd running-mean width from the ``smooth`` option (see :func:`predict_genome`)."""
    width = _width_option(smooth, resolution, "predict.smooth")
    return width + 1 - width % 2 if width > 1 else 1


def _overhang(pieces, off: int, size: int) -> int:
    """Kept bases of ``pieces`` that lie in the virtual padding beyond the chromosome ends."""
    return sum(max(0, min(p.keep_to, off) - p.keep_from) + max(0, p.keep_to - max(p.keep_from, off + size))
               for p in pieces)

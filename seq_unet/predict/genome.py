"""Genome-wide prediction: stream chromosomes through the model in batches of
overlapping windows and write one per-base bigWig per track.

:func:`predict_genome` checks the options, loads the model (or a seed
ensemble), plans the windows and the outputs, and runs the chromosome loop
(:mod:`~seq_unet.predict.chromosomes`) in this process or in several
(:mod:`~seq_unet.predict.processes`); the forward passes of a batch are in
:mod:`~seq_unet.predict.forward`.

With ``mc_samples = N > 0`` dropout stays active and every window is predicted
N times; the mean is written as ``<track>.bw`` and the per-base standard
deviation as ``<track>.std.bw`` (Monte Carlo dropout, an estimate of the
model's uncertainty). A network with ``valid`` padding predicts only the centre
of each window, so windows reach ``offset`` bases past the chromosome ends
(unknown bases) and overlap by at least ``2 * offset``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from seq_unet.errors import InputError
from seq_unet.io.bigwig_write import DEFAULT_PRECISION
from seq_unet.io.fasta import prepare_fasta
from seq_unet.io.genome import Genome
from seq_unet.io.names import bigwig, initiation_name, std_name
from seq_unet.lit import SeqUNetModule
from seq_unet.predict import chromosomes
from seq_unet.predict.chromosomes import Job, predict_share
from seq_unet.predict.forward import checkpoint_list, load_members, resolve_device
from seq_unet.predict.processes import fabric_accelerator, launch

log = logging.getLogger(__name__)


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
        devices: processes predicting in parallel (see :mod:`~seq_unet.predict.processes`): CPU
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
    job = Job(ckpt=ckpts, fasta=str(_indexed(fasta, out_dir)), paths={n: out_dir / bigwig(n) for n in names},
               length=length, crop=crop, off=off, width=width, batch_size=int(batch_size), precision=precision,
               std_precision=precision / 10 if std_precision is None else std_precision,
               reverse_complement=reverse_complement, mask_unknown=mask_unknown, mc_samples=int(mc_samples),
               seed=int(seed), rows=rows, rate_precision=rate_precision, blend=blend, segment=chromosomes.SEGMENT)
    where = dev if devices == 1 else f"{devices} processes ({fabric_accelerator(device)})"
    _log_plan(job, len(tracks), len(members), where)
    if devices == 1:
        predict_share(job, members, dev)
    else:
        del model, members
        launch(job, device, devices)
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


def _log_plan(job: Job, n_tracks: int, n_members: int, where) -> None:
    genome = Genome(job.fasta)
    log.info("predicting %d tracks on %d chromosomes (%d bp) with %d-bp windows, crop %d, output offset %d, "
             "running mean over %d bp, %s, %s, on %s", n_tracks, len(genome.sizes), sum(genome.sizes.values()),
             job.length, job.crop, job.off, job.width,
             f"{job.mc_samples} Monte Carlo dropout samples" if job.mc_samples > 0 else "dropout off",
             f"an ensemble of {n_members} models" if n_members > 1 else "one model", where)


def output_rows(model, mc_samples: int, members: int = 1) -> tuple[list[str], list[int]]:
    """Output names (``<track>``, ``<track>.initiation``, ``<track>.std``) and, for each, its row in the
    stacked (mean, sd) output of :func:`~seq_unet.predict.forward.predict_batch` (``rates=True`` for a
    kinetic model)."""
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

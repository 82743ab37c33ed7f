"""The forward passes of genome-wide prediction: the model, or the members of a
seed ensemble, loaded for inference, and the per-base predictions for one batch
of windows, averaged over the two strands, the Monte Carlo dropout passes and
the members (their mean and standard deviation), smoothed by a running mean that
stays within the chromosome, and padded back to the window length.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from seq_unet.checkpoint import load_module
from seq_unet.errors import InputError
from seq_unet.lit import SeqUNetModule
from seq_unet.model.inputs import encode_input, reverse_complement_input


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
                  starts: np.ndarray | None = None, chrom_size: np.ndarray | int | None = None,
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
    ``starts`` ``(batch,)`` and its chromosome's length ``chrom_size`` (``(batch,)``, or
    one for all). With ``rates`` (kinetic head), ``mean`` also holds the
    initiation-rate channels after the tracks (per minute and kb, averaged over
    strands and passes like the tracks).

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

"""Genome-wide prediction: stream chromosomes through the model in batches of
overlapping windows and write one per-base bigWig per track.

Memory is bounded by one chromosome's output buffer (``n_tracks x length``
float32) plus one batch; chromosomes are written to the bigWigs as soon as they
are done, in FASTA order.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
import torch

from seq_unet.errors import InputError
from seq_unet.io.genome import UNKNOWN, Genome, one_hot
from seq_unet.io.tracks import BigWigWriter
from seq_unet.lit import SeqUNetModule
from seq_unet.model.geometry import check_input_length
from seq_unet.predict.tiling import plan_windows, place

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(ckpt: str | Path, device: torch.device) -> SeqUNetModule:
    """Load a trained checkpoint for inference, with a clear error if it is not one."""
    ckpt = Path(ckpt)
    if not ckpt.exists():
        raise InputError(f"checkpoint {ckpt} does not exist; train a model first (`seq-unet train`)")
    try:
        model = SeqUNetModule.load_from_checkpoint(str(ckpt), map_location=device)
    except Exception as exc:  # any failure here means the file is not a usable checkpoint
        raise InputError(f"cannot load checkpoint {ckpt}: {type(exc).__name__}: {exc}") from exc
    return model.eval()


@torch.inference_mode()
def predict_batch(model: SeqUNetModule, codes: np.ndarray, device: torch.device,
                  reverse_complement: bool = True) -> np.ndarray:
    """Per-base predictions for a batch of base codes ``(batch, length)`` -> ``(batch, n_tracks, length)``.

    With ``reverse_complement`` the prediction is averaged with the prediction
    for the reverse-complement strand (flipped back), as the signal is strand-blind.
    """
    x = torch.from_numpy(one_hot(codes)).to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with autocast:
        y = model.predict_values(x).float()
        if reverse_complement:
            # reverse complement of one-hot (A,C,G,T) = flip channels and positions
            y_rc = model.predict_values(x.flip(1, 2)).float().flip(2)
            y = (y + y_rc) / 2
    return y.cpu().numpy()


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
                   crop: int | None = None, batch_size: int = 4, precision: float = 1e-3,
                   reverse_complement: bool = True, mask_unknown: bool = False,
                   device: str = "auto") -> dict[str, Path]:
    """Predict every base of every chromosome of ``fasta`` and write ``<out_dir>/<track>.bw``.

    Args:
        ckpt: trained checkpoint.
        fasta: indexed FASTA (``seq-unet genome`` prepares one).
        out_dir: output folder.
        window_length: prediction window; default the training window.
        crop: bases dropped at each inner window edge; default ``window_length // 8``.
        batch_size: windows per forward pass.
        precision: bigWig values are rounded to this step (max error ``precision / 2``).
        reverse_complement: average with the reverse-complement prediction.
        mask_unknown: write no value where the DNA is unknown (N); otherwise predict there too.
        device: ``auto``, ``cpu``, ``cuda``, ...

    Returns:
        The written bigWig path per track.
    """
    dev = resolve_device(device)
    model = load_model(ckpt, dev)
    length = int(window_length or model.hparams.window_length)
    try:
        check_input_length(length, model.net.factors, model.net.depth)
    except ValueError as exc:
        raise InputError(f"predict.window_length: {exc}") from exc
    crop = length // 8 if crop is None else int(crop)
    genome = Genome(fasta)
    tracks = list(model.hparams.tracks)
    out_dir = Path(out_dir)
    paths = {t: out_dir / f"{t}.bw" for t in tracks}
    progress = Progress(sum(genome.sizes.values()))
    log.info("predicting %d tracks on %d chromosomes (%d bp) with %d-bp windows, crop %d, on %s",
             len(tracks), len(genome.sizes), progress.total, length, crop, dev)
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(BigWigWriter(paths[t], genome.sizes, precision)) for t in tracks]
        for chrom, size in genome.sizes.items():
            buf = np.empty((len(tracks), size), dtype=np.float32)
            pieces = plan_windows(size, length, crop)
            for b in range(0, len(pieces), batch_size):
                batch = pieces[b : b + batch_size]
                codes = np.stack([genome.codes(chrom, p.start, p.start + length) for p in batch])
                out = predict_batch(model, codes, dev, reverse_complement)
                for p, o in zip(batch, out):
                    place(buf, p, o)
                progress.update(sum(p.keep_to - p.keep_from for p in batch))
            if mask_unknown:
                buf[:, genome.codes(chrom, 0, size) == UNKNOWN] = np.nan
            for w, values in zip(writers, buf):
                w.add(chrom, values)
    return paths

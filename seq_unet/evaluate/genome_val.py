"""Genome-wide validation: the validation chromosomes predicted the way ``seq-unet predict`` predicts them.

The window-level validation score of training sees every validation window
once, on one strand, edges included; the score that matters is the one of the
written bigWigs: overlapping windows with their edges cropped, both strands
averaged, scored in the track's bins. :class:`GenomeValidation` computes that
score from the dataset alone (the validation windows tile their chromosomes,
so the chromosomes' binned targets are reassembled from them, and their DNA is
read where the windows cover it) and
logs it as ``val/genome_pearson`` (mean over tracks) and
``val/genome_pearson_<track>``, for checkpoint selection and early stopping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from seq_unet.data.store import load_manifest, open_split
from seq_unet.io.bases import UNKNOWN, padded_codes
from seq_unet.io.binning import bin_means
from seq_unet.predict.tiling import place, plan_windows

log = logging.getLogger(__name__)


@dataclass
class Chromosome:
    """One chromosome reassembled from a dataset split: base codes and binned targets."""

    name: str
    codes: np.ndarray  # uint8 (length,)
    target: np.ndarray  # float32 (n_tracks, n_bins), unstandardised
    mask: np.ndarray  # bool (n_tracks, n_bins)


def assemble_split(dataset_dir: str | Path, split: str = "val") -> list[Chromosome]:
    """The chromosomes of ``split``, put together from its stored windows (which cover them entirely):
    bases outside every stored window (with its shift flanks) are unknown, as are targets outside them."""
    manifest = load_manifest(dataset_dir)
    d = Path(dataset_dir) / split
    windows = pd.read_csv(d / "windows.tsv", sep="\t", dtype={"chrom": str})
    dna, chrom_offset, tgt, msk = open_split(d, manifest)
    shift, r = int(manifest.get("max_shift", 0)), int(manifest["target_resolution"])
    stored = int(manifest["window_length"]) + 2 * shift
    n_tracks = len(manifest["tracks"])
    out = []
    for chrom, rows in windows.groupby("chrom", sort=False):
        size = int(rows.chrom_length.iloc[0])
        n_bins = -(-size // r)
        codes = np.full(size, UNKNOWN, np.uint8)
        target = np.zeros((n_tracks, n_bins), np.float32)
        mask = np.zeros((n_tracks, n_bins), bool)
        first = chrom_offset[str(chrom)]  # the chromosome's first base in dna
        for i, row in zip(rows.index, rows.itertuples(index=False)):
            lo = int(row.start) - shift  # chromosome coordinate of the stored window's first base
            a, b = max(lo, 0), min(lo + stored, size)
            codes[a:b] = dna[first + a : first + b]
            b0 = lo // r
            ba, bb = max(b0, 0), min(b0 + tgt.shape[2], n_bins)
            target[:, ba:bb] = tgt[i, :, ba - b0 : bb - b0]
            mask[:, ba:bb] = msk[i, :, ba - b0 : bb - b0]
        out.append(Chromosome(str(chrom), codes, target, mask))
    return out


def window_codes(codes: np.ndarray, start: int, length: int) -> np.ndarray:
    """``codes[start:start + length]``, unknown where the window passes the chromosome's ends."""
    return padded_codes(codes, start, length)


def predict_codes(model, codes: np.ndarray, device: torch.device, length: int, crop: int, batch_size: int = 8,
                  reverse_complement: bool = True, blend: int = 0) -> np.ndarray:
    """Per-base predictions ``(n_tracks, len(codes))`` of one chromosome, tiled and stitched as
    :func:`~seq_unet.predict.genome.predict_genome` does (no smoothing, dropout off)."""
    from seq_unet.predict.forward import predict_batch

    size = len(codes)
    off = model.net.geometry.offset(length)
    pieces = plan_windows(size + 2 * off, length, crop, blend)
    buf = np.zeros((len(model.hparams.tracks), size + 2 * off), np.float32)
    for b in range(0, len(pieces), batch_size):
        batch = pieces[b : b + batch_size]
        x = np.stack([window_codes(codes, p.start - off, length) for p in batch])
        mean, _ = predict_batch(model, x, device, reverse_complement, starts=np.array([p.start - off for p in batch]),
                                chrom_size=size)
        for p, o in zip(batch, mean):
            place(buf, p, o)
    return buf[:, off : off + size]


def pearson(pred_bins: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    ok = mask & np.isfinite(pred_bins)
    if ok.sum() < 3 or np.ptp(pred_bins[ok]) == 0 or np.ptp(target[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(pred_bins[ok], target[ok])[0, 1])


def score_chromosomes(model, chroms: list[Chromosome], device: torch.device, length: int, crop: int,
                      batch_size: int = 8, blend: int = 0) -> np.ndarray:
    """Pooled Pearson per track, in the dataset's target bins, of the stitched predictions of ``chroms``."""
    r = int(model.hparams.target_resolution)
    preds, targets, masks = [], [], []
    for c in chroms:
        pred = predict_codes(model, c.codes, device, length, crop, batch_size, blend=blend)
        n_bins = c.target.shape[1]
        padded = np.pad(pred, ((0, 0), (0, n_bins * r - pred.shape[1])), constant_values=np.nan)
        preds.append(bin_means(padded, r, ~np.isnan(padded))[0].astype(np.float32))
        targets.append(c.target)
        masks.append(c.mask)
    p, t, m = (np.concatenate(a, axis=1) for a in (preds, targets, masks))
    return np.array([pearson(p[i], t[i], m[i]) for i in range(len(p))])


class GenomeValidation(pl.Callback):
    """Log the genome-wide validation Pearson (``val/genome_pearson``) at the end of every validation.

    Args:
        dataset_dir: the dataset (its ``val`` split is reassembled into chromosomes).
        batch_size: windows per forward pass (``predict.batch_size``).
        blend: bases over which neighbouring windows cross-fade (``predict.blend``: a number or ``"auto"``).
        crop: bases dropped at inner window edges (None: as ``seq-unet predict`` would).
    """

    def __init__(self, dataset_dir: str | Path, *, batch_size: int, blend: int | str, crop: int | None = None):
        self.dataset_dir, self.crop, self.batch_size, self.blend = dataset_dir, crop, batch_size, blend
        self.chroms: list[Chromosome] | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, module) -> None:
        from seq_unet.predict.genome import blend_width, window_crop

        if trainer.sanity_checking:
            return
        if self.chroms is None:
            self.chroms = assemble_split(self.dataset_dir, "val")
        length = int(module.hparams.window_length)
        blend = blend_width(self.blend, length)
        crop = window_crop(module, length, 1, self.crop, blend)
        was_training = module.training
        module.eval()
        try:
            r = score_chromosomes(module, self.chroms, module.device, length, crop, self.batch_size, blend)
        finally:
            module.train(was_training)
        r = np.nan_to_num(r, nan=0.0)
        for name, value in zip(module.tracks, r):
            module.log(f"val/genome_pearson_{name}", float(value), sync_dist=False)
        module.log("val/genome_pearson", float(r.mean()), prog_bar=True, sync_dist=False)

"""The LightningModule: SeqUNet, the masked loss, validation metrics and the optimiser.

The network predicts one value per base per track, in units of the train
set's standardised targets. The loss averages those per-base predictions into
the dataset's target bins (the track's native resolution) and compares them
with the measured values over valid bins only. With ``valid`` padding the
network predicts only the centre of each window, and the loss uses the target
bins that lie wholly inside it. Everything needed to rebuild the
model and undo the standardisation is saved as hyperparameters; the
training run's provenance (version, configuration, data checksums) is saved
beside them, and :func:`seq_unet.checkpoint.load_module` rebuilds the model
from a checkpoint without unpickling anything but tensors and plain values.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.regression import PearsonCorrCoef

from seq_unet.model.unet import SeqUNet


class SeqUNetModule(pl.LightningModule):
    """Train a :class:`SeqUNet` on windows of one-hot DNA.

    Args:
        tracks: track names, in output-channel order.
        window_length: training window length (bases).
        target_resolution: target bin size (bases); predictions are averaged to it in the loss.
        target_mean: per-track train mean used to standardise targets.
        target_std: per-track train standard deviation.
        model: keyword arguments of :class:`SeqUNet` (besides ``n_tracks``).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup_fraction: fraction of steps of linear warm-up before cosine decay.
        loss: ``mse`` or ``huber``.
        dataset_md5: checksum of the training dataset's manifest (provenance).
    """

    def __init__(self, tracks: Sequence[str], window_length: int, target_resolution: int,
                 target_mean: Sequence[float], target_std: Sequence[float], model: dict | None = None,
                 lr: float = 2e-3, weight_decay: float = 1e-2, warmup_fraction: float = 0.05,
                 loss: str = "mse", dataset_md5: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.tracks = list(tracks)
        self.net = SeqUNet(n_tracks=len(self.tracks), **dict(model or {}))
        self.register_buffer("target_mean", torch.tensor(list(target_mean), dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(list(target_std), dtype=torch.float32))
        self.val_pearson = nn.ModuleList(PearsonCorrCoef() for _ in self.tracks)
        self.val_loss = MeanMetric()  # the error over every valid validation bin, however the windows are batched
        if loss not in ("mse", "huber"):
            raise ValueError(f"unknown loss {loss!r}; choose 'mse' or 'huber'")
        # target bins [bin_from, bin_to) covered by the output; output positions [out_from, out_to)
        offset = self.net.geometry.offset(window_length)
        r = target_resolution
        self.bin_from, self.bin_to = -(-offset // r), (window_length - offset) // r
        if self.bin_to <= self.bin_from:
            raise ValueError(f"with valid padding the U-Net predicts only bases {offset}..{window_length - offset} "
                             f"of a {window_length}-bp window, less than one {r}-bp target bin; use a longer window")
        self.out_from, self.out_to = self.bin_from * r - offset, self.bin_to * r - offset
        # set by `seq-unet train`: version, configuration and data checksums (seq_unet.checkpoint)
        self.provenance: dict | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.provenance is not None:
            from seq_unet.checkpoint import KEY

            checkpoint[KEY] = self.provenance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised per-base predictions ``(batch, n_tracks, length)`` for one-hot ``x``."""
        return self.net(x)

    def predict_values(self, x: torch.Tensor) -> torch.Tensor:
        """Per-base predictions in the track's own units, ``(batch, n_tracks, length)``."""
        return self.net(x) * self.target_std[:, None] + self.target_mean[:, None]

    def pool(self, pred: torch.Tensor) -> torch.Tensor:
        r = self.hparams.target_resolution
        return pred if r == 1 else F.avg_pool1d(pred, r)

    def _targets(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets and mask of the bins the output covers (all of them with ``same`` padding)."""
        return batch["y"][..., self.bin_from : self.bin_to], batch["mask"][..., self.bin_from : self.bin_to]

    def _loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.pool(self(batch["x"])[..., self.out_from : self.out_to])
        y, mask = self._targets(batch)
        if self.hparams.loss == "mse":
            err = (pooled - y) ** 2
        else:
            err = F.huber_loss(pooled, y, reduction="none")
        loss = (err * mask).sum() / mask.sum().clamp_min(1)
        return loss, pooled

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        # with DDP: the step value is the mean over the processes' batches
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["x"]),
                 sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, pooled = self._loss(batch)
        y, mask = self._targets(batch)
        self.val_loss.update(loss.float(), weight=mask.sum().float())  # weighted by its valid bins
        for t, metric in enumerate(self.val_pearson):
            m = mask[:, t]
            if m.sum() > 1:
                metric.update(pooled[:, t][m].float(), y[:, t][m].float())

    def on_validation_epoch_end(self) -> None:
        # torchmetrics gathers the metrics' states from every process (DDP) in compute():
        # the values are those of the whole validation split, as in a single process
        self.log("val/loss", self.val_loss.compute(), sync_dist=False)
        self.val_loss.reset()
        values = []
        for name, metric in zip(self.tracks, self.val_pearson):
            r = metric.compute()
            metric.reset()
            r = torch.nan_to_num(r, nan=0.0)
            self.log(f"val/pearson_{name}", r, sync_dist=False)
            values.append(r)
        self.log("val/pearson", torch.stack(values).mean(), prog_bar=True, sync_dist=False)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warm = max(int(total * self.hparams.warmup_fraction), 1)
        sched = torch.optim.lr_scheduler.SequentialLR(
            opt,
            [torch.optim.lr_scheduler.LinearLR(opt, 0.01, 1.0, warm),
             torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(total - warm, 1), eta_min=self.hparams.lr * 0.01)],
            milestones=[warm],
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

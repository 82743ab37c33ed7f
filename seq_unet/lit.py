"""The LightningModule: SeqUNet, the masked loss, validation metrics and the optimiser.

The network predicts one value per base per track, in units of the train
set's standardised targets. The loss averages those per-base predictions into
the dataset's target bins (the track's native resolution) and compares them
with the measured values over valid bins only. With ``valid`` padding the
network predicts only the centre of each window, and the loss uses the target
bins that lie wholly inside it. Everything needed to rebuild the
model and undo the standardisation is saved as hyperparameters; the
training run's provenance (version, configuration, data checksums) is saved
beside them by :class:`seq_unet.checkpoint.ProvenanceRecorder`, and
:func:`seq_unet.checkpoint.load_module` rebuilds the model
from a checkpoint without unpickling anything but tensors and plain values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.regression import PearsonCorrCoef

from seq_unet.model.heads import check_kinetic_window, loss_margin_bins, make_head
from seq_unet.model.inputs import input_channels
from seq_unet.model.unet import SeqUNet, split_model_options


def known_bases(x: torch.Tensor) -> torch.Tensor:
    """``(batch, length)`` bool: True where the input holds a base (not unknown DNA or padding)."""
    return x[:, :4].sum(1) > 0


class TrackPearson(PearsonCorrCoef):
    """The validation Pearson of one track; 0 where it is undefined (constant values, fewer than two bins)."""

    def compute(self) -> torch.Tensor:
        return torch.nan_to_num(super().compute(), nan=0.0)


class MeanOfMetrics(Metric):
    """The mean of other metrics' values (each computed, and gathered from every process, by itself).

    It holds no state: ``update`` only marks that an epoch has data. The metrics are
    kept in a plain list, so that they are not registered as its submodules twice.
    """

    def __init__(self, metrics: Sequence[Metric]):
        super().__init__()
        self._parts = list(metrics)

    def update(self) -> None:
        pass

    def compute(self) -> torch.Tensor:
        return torch.stack([m.compute() for m in self._parts]).mean()


class SeqUNetModule(pl.LightningModule):
    """Train a :class:`SeqUNet` on windows of one-hot DNA.

    Args:
        tracks: track names, in output-channel order.
        window_length: training window length (bases).
        target_resolution: target bin size (bases); predictions are averaged to it in the loss.
        target_mean: per-track train mean used to standardise targets.
        target_std: per-track train standard deviation.
        model: the model config (``conf/model``): the keyword arguments of :class:`SeqUNet` (besides
            ``n_tracks`` and ``in_channels``), ``head``, ``kinetic`` (for the kinetic head) and ``position_scale``.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup_fraction: fraction of steps of linear warm-up before cosine decay.
        warmup_start_factor: the warm-up starts at this fraction of ``lr``.
        min_lr_ratio: the cosine decay ends at this fraction of ``lr``.
        loss: ``mse`` or ``huber``.
        dataset_md5: checksum of the training dataset's manifest (provenance).

    Every setting but the data's (tracks, window, targets) comes from the configuration: ``model``
    is ``conf/model``, the optimiser's are ``train.*``; none has a value of its own here.
    """

    def __init__(self, tracks: Sequence[str], window_length: int, target_resolution: int,
                 target_mean: Sequence[float], target_std: Sequence[float], *, model: Mapping,
                 lr: float, weight_decay: float, warmup_fraction: float,
                 loss: str, dataset_md5: str | None = None, warmup_start_factor: float,
                 min_lr_ratio: float):
        super().__init__()
        self.save_hyperparameters()
        self.tracks = list(tracks)
        unet, opts = split_model_options(model)
        missing = [k for k in ("head", "position_scale") if k not in opts]
        if missing:
            raise ValueError(f"the model options {missing} are missing")
        self.position_scale = opts["position_scale"]
        self.head = make_head(opts["head"], len(self.tracks), opts.get("kinetic"))
        self.kinetic = self.head.bin_size > 1
        self.net = SeqUNet(n_tracks=self.head.n_channels, in_channels=input_channels(self.position_scale), **unet)
        self.register_buffer("target_mean", torch.tensor(list(target_mean), dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(list(target_std), dtype=torch.float32))
        self.val_pearson = nn.ModuleList(TrackPearson() for _ in self.tracks)
        self.val_pearson_mean = MeanOfMetrics(self.val_pearson)
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
        if self.kinetic:
            check_kinetic_window(self.head.geometry, self.net.geometry.padding, window_length, target_resolution)

    def loss_margin_bins(self) -> int:
        """Target bins at each inner window edge that the loss leaves out (the kinetics' reach; 0 for linear)."""
        return loss_margin_bins(self.head.geometry if self.kinetic else None, int(self.hparams.target_resolution))

    @property
    def context(self) -> int:
        """Bases at each inner window edge whose predictions lack context the model needs (kinetic: its reach)."""
        return self.head.geometry.reach if self.kinetic else 0

    def _head_values(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised values at the head's resolution (per base, or per kinetic bin)."""
        return self.head(self.net(x), known_bases(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised per-base predictions ``(batch, n_tracks, output length)`` for an input ``x``."""
        v = self._head_values(x)
        return self.head.per_base(v, x.shape[-1]) if self.kinetic else v

    def predict_values(self, x: torch.Tensor) -> torch.Tensor:
        """Per-base predictions in the track's own units, ``(batch, n_tracks, length)``."""
        return self(x) * self.target_std[:, None] + self.target_mean[:, None]

    def predict_outputs(self, x: torch.Tensor, rates: bool = False) -> torch.Tensor:
        """Per-base track values in the tracks' units; with ``rates`` (kinetic head) followed by
        the per-base initiation rates, per minute and kb: ``(batch, n_tracks [+ n_rate_channels], length)``."""
        if not rates:
            return self.predict_values(x)
        if not self.kinetic:
            raise ValueError("only a model with model.head=kinetic predicts initiation rates")
        r = self.head.rates(self.net(x), known_bases(x))
        v = self.head.per_base(self.head.values(self.head.times(r)), x.shape[-1])
        return torch.cat([v * self.target_std[:, None] + self.target_mean[:, None], r * 1000.0], dim=1)

    def pool(self, pred: torch.Tensor) -> torch.Tensor:
        r = self.hparams.target_resolution
        return pred if r == 1 else F.avg_pool1d(pred, r)

    def _binned(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised predictions in the target bins the output covers."""
        if not self.kinetic:
            return self.pool(self(x)[..., self.out_from : self.out_to])
        v = self._head_values(x)
        r, b = int(self.hparams.target_resolution), self.head.bin_size
        if b == r:
            return v
        if b > r:  # bins of the integral hold several target bins: per base, then target bins
            return self.pool(self.head.per_base(v, x.shape[-1]))
        return F.avg_pool1d(v, r // b)

    def _targets(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets and loss mask of the bins the output covers (all of them with ``same`` padding).

        With the kinetic head, bins within its reach of an inner window edge are
        left out; where the window edge is a chromosome end (``batch["ends"]``)
        there are no origins beyond it, and those bins count.
        """
        y, mask = batch["y"][..., self.bin_from : self.bin_to], batch["mask"][..., self.bin_from : self.bin_to]
        margin = self.loss_margin_bins()
        if margin:
            n = mask.shape[-1]
            ends = batch.get("ends")
            if ends is None:
                ends = torch.zeros(len(mask), 2, dtype=torch.bool, device=mask.device)
            i = torch.arange(n, device=mask.device)
            trusted = ((i >= margin) | ends[:, :1]) & ((i < n - margin) | ends[:, 1:])
            mask = mask & trusted[:, None, :]
        return y, mask

    def _loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self._binned(batch["x"])
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
        self.val_pearson_mean.update()
        # the metric objects themselves are logged: Lightning computes them at the epoch's end and resets them,
        # and torchmetrics gathers their states from every process (DDP) in compute(), so the values are those
        # of the whole validation split, as in a single process
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True)
        for name, metric in zip(self.tracks, self.val_pearson):
            self.log(f"val/pearson_{name}", metric, on_step=False, on_epoch=True)
        self.log("val/pearson", self.val_pearson_mean, on_step=False, on_epoch=True, prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warm = max(int(total * self.hparams.warmup_fraction), 1)
        floor = self.hparams.lr * self.hparams.min_lr_ratio
        sched = torch.optim.lr_scheduler.SequentialLR(
            opt,
            [torch.optim.lr_scheduler.LinearLR(opt, self.hparams.warmup_start_factor, 1.0, warm),
             torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(total - warm, 1), eta_min=floor)],
            milestones=[warm],
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

"""Batch-norm statistics recomputed from training windows before every validation.

Batch normalisation keeps running averages of its batch statistics for
prediction. During training those averages trail the weights (each step moves
them by the momentum, while the weights keep changing) and they are gathered
with dropout on, while prediction runs with dropout off or averages dropout
masks. On the yeast data a model whose weights were good predicted values
offset from the measured ones for that reason alone: with statistics recomputed
once from 64 training windows, dropout off, the same weights predicted at the
measured mean. :class:`NormStatistics` does that recomputation before every
validation ("precise batch norm", Wu & Johnson 2021, arXiv:2105.07576), so that
validation, checkpoint selection and the saved checkpoints all use statistics
that belong to the weights. A model without batch normalisation is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from seq_unet.data.store import WindowDataset
from seq_unet.errors import InputError
from seq_unet.model.inputs import reverse_complement_input


def batch_norms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-normalisation layers of ``net``."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recompute_norm_stats(net: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace the running statistics of ``net``'s batch norms by their average over ``batches``.

    Every input batch goes through ``net`` with dropout (and everything else)
    in eval mode and the batch norms in training mode, with a cumulative average
    (``momentum=None``), so each batch counts equally. Afterwards every module's
    mode and every norm's momentum are as before. Returns the number of batch
    norms updated (0: nothing to do, and ``batches`` is not read).
    """
    norms = batch_norms(net)
    if not norms:
        return 0
    modes = [(m, m.training) for m in net.modules()]
    momenta = [n.momentum for n in norms]
    try:
        net.eval()
        for n in norms:
            n.reset_running_stats()
            n.momentum = None
            n.train()
        for x in batches:
            net(x)
    finally:
        for n, momentum in zip(norms, momenta):
            n.momentum = momentum
        for m, training in modes:
            m.training = training
    return len(norms)


class NormStatistics(pl.Callback):
    """Before every validation, recompute the model's batch-norm statistics from ``windows`` training windows.

    The windows are the same every time: spread evenly over the training split,
    unshifted, every second one on the reverse strand (prediction averages both).
    They go through the network in batches of ``batch_size``, as in training.

    Args:
        dataset_dir: the dataset (its ``train`` split).
        windows: how many training windows (0: off; Lightning's running averages are kept).
        batch_size: windows per forward pass (``train.batch_size``).
        position_scale: the model's position channel (``model.position_scale``), None: DNA only.
    """

    def __init__(self, dataset_dir: str, *, windows: int, batch_size: int, position_scale: float | None):
        if windows < 0:
            raise InputError(f"callbacks.norm_stats.windows must be 0 (off) or more, not {windows}")
        self.dataset_dir, self.windows, self.batch_size = dataset_dir, windows, batch_size
        self.position_scale = position_scale
        self._dataset: WindowDataset | None = None

    def batches(self) -> Iterable[torch.Tensor]:
        """The fixed calibration inputs, in batches ``(batch, channels, length)``, read as they are used."""
        if self._dataset is None:
            self._dataset = WindowDataset(f"{self.dataset_dir}/train", position_scale=self.position_scale)
        ds = self._dataset
        picks = np.unique(np.linspace(0, len(ds) - 1, min(self.windows, len(ds))).round().astype(int))
        for b in range(0, len(picks), self.batch_size):
            x = torch.stack([ds[int(i)]["x"] for i in picks[b : b + self.batch_size]])
            odd = (torch.arange(len(x)) + b) % 2 == 1  # every second window of the whole set
            x[odd] = reverse_complement_input(x[odd])
            yield x

    def on_validation_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.windows == 0 or not batch_norms(module.net):
            return
        recompute_norm_stats(module.net, (x.to(module.device) for x in self.batches()))

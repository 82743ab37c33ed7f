"""Batch-norm statistics recomputed from training windows (seq_unet.norm_stats), against hand-computed ones."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from seq_unet.io.bases import encode, one_hot, reverse_complement_codes
from seq_unet.model.inputs import reverse_complement_input as reverse_complement_batch
from seq_unet.norm_stats import recompute_norm_stats


def reverse_complement_input(x: torch.Tensor) -> torch.Tensor:
    """The calibration windows' reverse strand (seq_unet.model.inputs), for one window ``(channels, length)``."""
    return reverse_complement_batch(x[None])[0]


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(4, 3, 5, padding=2), nn.BatchNorm1d(3), nn.Dropout(0.5),
                         nn.Conv1d(3, 2, 1), nn.BatchNorm1d(2))


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 4, 50, generator=g) * s + s for n, s in ((3, 1.0), (5, 2.0), (2, 0.5))]


def _expected(net: nn.Sequential, batches: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each norm's mean over the batches of its batch mean and unbiased batch variance, with dropout off
    (left on, it would scale the second norm's input variance by about 2) and every norm normalising
    with its batch's own statistics (float64, by hand)."""
    conv1, bn1, _, conv2, _ = [m.double() for m in net]
    sums = [[torch.zeros(3, dtype=torch.float64)] * 2, [torch.zeros(2, dtype=torch.float64)] * 2]
    for x in batches:
        h = conv1(x.double())
        m1, v1 = h.mean((0, 2)), h.var((0, 2), unbiased=False)
        n = h.shape[0] * h.shape[2]
        sums[0] = [sums[0][0] + m1, sums[0][1] + v1 * n / (n - 1)]
        h = (h - m1[:, None]) / torch.sqrt(v1[:, None] + bn1.eps) * bn1.weight[:, None] + bn1.bias[:, None]
        h = conv2(h)  # dropout off: nothing dropped, nothing rescaled
        sums[1] = [sums[1][0] + h.mean((0, 2)), sums[1][1] + h.var((0, 2), unbiased=True)]
    net.float()
    return [(m / len(batches), v / len(batches)) for m, v in sums]


def test_statistics_are_the_average_over_batches_with_dropout_off():
    net, batches = _net(), _batches()
    expected = _expected(_net(), batches)
    net.train()
    for bn in (net[1], net[4]):  # stale statistics that must be replaced, not blended in
        bn.running_mean.fill_(100.0)
        bn.running_var.fill_(0.01)
    assert recompute_norm_stats(net, batches) == 2
    for bn, (mean, var) in zip((net[1], net[4]), expected):
        torch.testing.assert_close(bn.running_mean.double(), mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-5, atol=1e-5)


def test_modes_and_momenta_are_left_as_they_were():
    net = _net()
    net[4].momentum = 0.3
    for training in (True, False):
        net.train(training)
        recompute_norm_stats(net, _batches())
        assert all(m.training == training for m in net.modules())
        assert net[1].momentum == 0.1 and net[4].momentum == 0.3


def test_a_network_without_batch_norm_is_left_alone_and_its_inputs_unread():
    net = nn.Sequential(nn.Conv1d(4, 2, 3), nn.GroupNorm(1, 2))
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def batches():
        raise AssertionError("read")
        yield

    assert recompute_norm_stats(net, batches()) == 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_reverse_complement_of_a_one_hot_input_is_that_of_its_bases():
    codes = encode("ACGTTNAGGCAN")
    x = torch.from_numpy(one_hot(codes))
    torch.testing.assert_close(reverse_complement_input(x), torch.from_numpy(one_hot(reverse_complement_codes(codes))))
    with_position = torch.cat([x, torch.arange(12.0)[None]])
    rc = reverse_complement_input(with_position)
    assert torch.equal(rc[4], torch.arange(12.0).flip(0)) and torch.equal(rc[:4], reverse_complement_input(x))
    assert np.array_equal(with_position.numpy(), torch.cat([x, torch.arange(12.0)[None]]).numpy())  # input unchanged

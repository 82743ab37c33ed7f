"""U-Net shapes, length checks and receptive field."""

from __future__ import annotations

import pytest
import torch

from seq_unet.model.geometry import check_input_length, receptive_field
from seq_unet.model.unet import SeqUNet


@pytest.mark.parametrize("depth, pool", [(1, 2), (2, 4), (3, [2, 4, 2]), (4, 2)])
@pytest.mark.parametrize("skip", ["concat", "add", "none"])
def test_output_shape_per_base(depth, pool, skip):
    net = SeqUNet(n_tracks=3, depth=depth, pool=pool, base_channels=8, kernel_size=5, skip=skip,
                  bottleneck_blocks=2, dropout=0.0).eval()
    length = net.length_multiple * 5
    y = net(torch.randn(2, 4, length))
    assert y.shape == (2, 3, length)


@pytest.mark.parametrize("up", ["transpose", "nearest", "linear"])
@pytest.mark.parametrize("down", ["maxpool", "conv"])
def test_up_down_variants(up, down):
    net = SeqUNet(n_tracks=1, depth=2, pool=4, base_channels=8, kernel_size=3, up=up, down=down,
                  bottleneck_blocks=1).eval()
    assert net(torch.randn(1, 4, 64)).shape == (1, 1, 64)


def test_unusable_length_names_nearest_lengths():
    with pytest.raises(ValueError, match=r"multiple of 64; nearest usable lengths: 960 or 1024"):
        check_input_length(1000, 4, 3)
    net = SeqUNet(n_tracks=1, depth=3, pool=4, base_channels=8, bottleneck_blocks=1)
    with pytest.raises(ValueError, match="nearest usable lengths"):
        net(torch.randn(1, 4, 1000))


def test_receptive_field_formula_small_case():
    # stem: 2 convs k=3 -> 5; down x2 -> +1 -> 6 (jump 2); 2 convs at jump 2 -> +8 -> 14;
    # bottleneck 1 block k=3 d=1 at jump 2 -> +4 -> 18; up (transpose) -> jump 1; 2 convs -> +4 -> 22
    assert receptive_field(1, 2, 3, 1, 3, 2) == 22


def test_receptive_field_bounds_the_influence():
    """An output base must not depend on input farther away than the receptive field."""
    torch.manual_seed(0)
    net = SeqUNet(n_tracks=1, depth=2, pool=2, base_channels=8, kernel_size=3, bottleneck_blocks=2,
                  norm="none", dropout=0.0, down="conv").double().eval()
    rf = net.receptive_field
    length = 4 * rf
    x = torch.randn(1, 4, length, dtype=torch.double, requires_grad=True)
    centre = length // 2
    net(x)[0, 0, centre].backward()
    touched = (x.grad.abs().sum(1)[0] > 0).nonzero().flatten()
    span = int(touched.max() - touched.min() + 1)
    assert span <= rf
    assert span >= rf // 2  # the bound is not wildly loose


def test_gradient_checkpointing_gives_identical_gradients():
    torch.manual_seed(0)
    kw = dict(n_tracks=2, depth=3, pool=2, base_channels=8, kernel_size=3, bottleneck_blocks=2, dropout=0.0)
    a = SeqUNet(**kw, checkpointing=False)
    b = SeqUNet(**kw, checkpointing=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 4, 64)
    for net in (a, b):
        net.train()
        net(x).pow(2).mean().backward()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=n)

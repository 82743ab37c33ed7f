"""U-Net shapes, geometry (usable lengths, output crop, receptive field) and options."""

from __future__ import annotations

import pytest
import torch

from seq_unet.model.geometry import Geometry
from seq_unet.model.unet import SeqUNet, geometry_from_config
from tests.conf_values import unet_options

SMALL = dict(base_channels=8, kernel_size=5, bottleneck_blocks=2, dropout=0.0)


@pytest.mark.parametrize("depth, pool", [(1, 2), (2, 4), (3, [2, 4, 2]), (4, 2)])
@pytest.mark.parametrize("skip", ["concat", "add", "none"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_output_shape(depth, pool, skip, padding):
    net = SeqUNet(n_tracks=3, **unet_options(depth=depth, pool=pool, skip=skip, padding=padding,
                                             coarse_head=padding == "same", **SMALL)).eval()
    g = net.geometry
    length = g.nearest_valid_lengths(g.multiple * 20)[1]
    y = net(torch.randn(2, 4, length))
    assert y.shape == (2, 3, g.output_length(length))
    if padding == "same":
        assert y.shape[-1] == length and g.offset(length) == 0
    else:
        assert y.shape[-1] < length and length - y.shape[-1] == 2 * g.offset(length)


@pytest.mark.parametrize("up", ["transpose", "nearest", "linear"])
@pytest.mark.parametrize("down", ["maxpool", "conv"])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("merge_norm", ["after", "before", "none"])
def test_every_variant_runs_and_learns_shapes(up, down, padding, merge_norm):
    net = SeqUNet(n_tracks=1, **unet_options(depth=2, pool=4, base_channels=8, kernel_size=3, up=up, down=down,
                                             padding=padding, merge_norm=merge_norm, bottleneck_blocks=1,
                                             coarse_head=padding == "same")).train()
    length = net.geometry.nearest_valid_lengths(200)[1]
    y = net(torch.randn(2, 4, length))
    y.mean().backward()
    assert y.shape == (2, 1, net.geometry.output_length(length))
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("up", ["transpose", "nearest", "linear"])
def test_valid_geometry_predicts_exactly_the_lengths_the_network_takes(up):
    """The configuration-only arithmetic agrees with the real network for every length tried."""
    kw = dict(depth=2, pool=[2, 4], kernel_size=3, bottleneck_blocks=2, bottleneck_kernel=3, dilation_growth=2, up=up,
              padding="valid")
    net = SeqUNet(n_tracks=1, **unet_options(base_channels=8, dropout=0.0, coarse_head=False, **kw)).eval()
    g = geometry_from_config(kw)
    assert g == net.geometry
    accepted = 0
    for length in range(1, 200):
        try:
            out = net(torch.randn(1, 4, length)).shape[-1]
        except (ValueError, RuntimeError):
            assert not g.accepts(length), length
            continue
        accepted += 1
        assert g.accepts(length) and out == g.output_length(length), length
    assert accepted >= 10


def test_unusable_length_names_nearest_lengths():
    g = Geometry((4, 4, 4), 9, 3, (1, 2))
    with pytest.raises(ValueError, match=r"multiple of 64 .*nearest usable lengths: 960 or 1024"):
        g.check(1000)
    net = SeqUNet(n_tracks=1, **unet_options(depth=3, pool=4, base_channels=8, bottleneck_blocks=1))
    with pytest.raises(ValueError, match="nearest usable lengths"):
        net(torch.randn(1, 4, 1000))
    valid = Geometry((2, 2), 3, 3, (1,), padding="valid")
    below, above = valid.nearest_valid_lengths(101)
    assert valid.accepts(below) and valid.accepts(above) and below < 101 < above
    assert not any(valid.accepts(n) for n in range(below + 1, above))
    with pytest.raises(ValueError, match=rf"valid padding.*nearest usable lengths: {below} or {above}"):
        valid.check(101)
    with pytest.raises(ValueError, match=r"the shortest this network accepts"):
        valid.check(3)


def test_unknown_model_option_is_named():
    with pytest.raises(ValueError, match=r"unknown model options \['dept'\]"):
        geometry_from_config({"dept": 3})
    with pytest.raises(ValueError, match=r"the model options \['dilation_growth', 'padding'\] are missing"):
        geometry_from_config({"depth": 2, "pool": 4, "kernel_size": 3, "bottleneck_blocks": 1, "bottleneck_kernel": 3,
                              "up": "transpose"})


def test_receptive_field_formula_small_case():
    # stem: 2 convs k=3 -> 5; down x2 -> +1 -> 6 (jump 2); 2 convs at jump 2 -> +8 -> 14;
    # bottleneck 1 block k=3 d=1 at jump 2 -> +4 -> 18; up (transpose) -> jump 1; 2 convs -> +4 -> 22
    assert Geometry((2,), 3, 3, (1,)).receptive_field == 22
    assert Geometry((2,), 3, 3, (1,), padding="valid").receptive_field == 22


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_receptive_field_bounds_the_influence(padding):
    """An output base must not depend on input farther away than the receptive field."""
    torch.manual_seed(0)
    net = SeqUNet(n_tracks=1, **unet_options(depth=2, pool=2, base_channels=8, kernel_size=3, bottleneck_blocks=2,
                                             norm="none", dropout=0.0, down="conv", padding=padding,
                                             coarse_head=padding == "same")).double().eval()
    rf = net.receptive_field
    length = net.geometry.nearest_valid_lengths(4 * rf)[1]
    x = torch.randn(1, 4, length, dtype=torch.double, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[-1] // 2].backward()
    touched = (x.grad.abs().sum(1)[0] > 0).nonzero().flatten()
    span = int(touched.max() - touched.min() + 1)
    assert span <= rf
    assert span >= rf // 2  # the bound is not wildly loose


def test_mc_dropout_switches_only_dropout():
    net = SeqUNet(n_tracks=1, **unet_options(depth=2, pool=2, base_channels=8, kernel_size=3, bottleneck_blocks=1,
                                             dropout=0.5)).eval()
    x = torch.randn(1, 4, 64)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        net.mc_dropout(True)
        assert not torch.equal(net(x), net(x))
        assert not any(m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d))
        net.mc_dropout(False)
        assert torch.equal(net(x), net(x))


def test_coarse_head_starts_as_the_plain_network_then_learns_per_bottleneck_position():
    torch.manual_seed(0)
    small = dict(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=1)
    plain = SeqUNet(n_tracks=2, **unet_options(**small)).eval()
    torch.manual_seed(0)
    coarse = SeqUNet(n_tracks=2, **unet_options(**small, coarse_head=True)).eval()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, 256)), 4).float().transpose(1, 2)
    torch.testing.assert_close(coarse(x), plain(x))  # zero-initialised: the same function at the start
    # a bias on the coarse path moves the output by the same amount at every base; a weight on one
    # bottleneck channel changes each run of 16 bases (4 x 4 pooling) by one value
    with torch.no_grad():
        coarse.coarse.bias.fill_(0.5)
    torch.testing.assert_close(coarse(x), plain(x) + 0.5)
    with torch.no_grad():
        coarse.coarse.bias.zero_()
        coarse.coarse.weight[0, 0, 0] = 1.0
    diff = (coarse(x) - plain(x))[0, 0]
    steps = diff.reshape(-1, 16)
    torch.testing.assert_close(steps, steps[:, :1].expand_as(steps))
    assert steps[:, 0].abs().max() > 0
    # the loss reaches the bottleneck through the coarse head in one layer
    coarse.train()
    coarse(x).sum().backward()
    assert coarse.coarse.weight.grad.abs().sum() > 0


def test_coarse_head_needs_same_padding():
    with pytest.raises(ValueError, match="coarse_head needs model.padding: same"):
        SeqUNet(n_tracks=1, **unet_options(depth=2, pool=4, padding="valid", coarse_head=True))


def test_motif_scanner_keeps_a_motif_hit_through_the_first_pooling_wherever_it_sits():
    """Max-pooling: one motif hit gives the same pooled value at any offset inside its pooled stretch,
    where average pooling over 16 bases would dilute it; the network's lengths and reach stay the same."""
    from seq_unet.model.unet import MotifScanner

    scan = MotifScanner(4, 1, 5, 16, "none", "same", stem_kernel=5).eval()
    motif = torch.tensor([0, 3, 3, 3, 0])  # ATTTA
    with torch.no_grad():
        scan.body[0].weight.copy_(2 * torch.nn.functional.one_hot(motif, 4).T.float()[None] - 1)
        scan.body[0].bias.fill_(-4.0)  # fires (value 1) on the full match only
    values = []
    for start in range(16, 27):  # every offset inside the second stretch of 16 bases
        seq = torch.full((64,), 2)  # G
        seq[start:start + 5] = motif
        y = scan(torch.nn.functional.one_hot(seq, 4).T.float()[None])[0, 0]
        assert y.tolist() == [0.0, 1.0, 0.0, 0.0], (start, y)
        values.append(y[1].item())
    assert set(values) == {1.0}

    small = dict(depth=2, pool=[16, 4], base_channels=8, kernel_size=5, bottleneck_blocks=1, dropout=0.0)
    plain = SeqUNet(n_tracks=2, **unet_options(**small)).eval()
    net = SeqUNet(n_tracks=2, **unet_options(**small, motif_channels=6, motif_kernel=9)).train()
    assert net.geometry == plain.geometry and net.receptive_field == plain.receptive_field
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (2, 512)), 4).float().transpose(1, 2)
    y = net(x)
    assert y.shape == (2, 2, 512)
    y.sum().backward()
    assert net.motifs.body[0].weight.grad.abs().sum() > 0  # the scanner's features reach the output


@pytest.mark.parametrize("change, message", [
    (dict(padding="valid"), "motif_channels needs model.padding: same"),
    (dict(motif_kernel=11), "motif_kernel must be odd and at most 9"),
    (dict(motif_kernel=4), "motif_kernel must be odd"),
])
def test_motif_scanner_refuses_what_would_change_the_geometry(change, message):
    opts = dict(depth=2, pool=4, kernel_size=5, motif_channels=4, motif_kernel=9, coarse_head=False)
    opts.update(change)
    with pytest.raises(ValueError, match=message):
        SeqUNet(n_tracks=1, **unet_options(**opts))


def test_motif_init_starts_detectors_on_the_consensus_of_both_strands():
    """A detector started from ``WTTTAYRTTTW`` scores an exact ACS highest, on either strand; the rest stay random."""
    from seq_unet.motifs import reverse_complement

    net = SeqUNet(n_tracks=1, **unet_options(depth=2, pool=[16, 4], kernel_size=9, motif_channels=4, motif_kernel=15,
                                             motif_init=["WTTTAYRTTTW"], coarse_head=False))
    conv = net.motifs.body[0]
    rng = torch.Generator().manual_seed(0)
    for site, filt in (("ATTTACATTTA", 0), (reverse_complement("ATTTACATTTA"), 1)):
        seq = torch.randint(0, 4, (400,), generator=rng)
        seq[200:211] = torch.tensor(["ACGT".index(b) for b in site])
        x = torch.nn.functional.one_hot(seq, 4).T.float()[None]
        scores = conv(x)[0]
        assert int(scores[filt].argmax()) == 205  # the centre of the planted site
        assert scores[filt, 205] > scores[filt].topk(2).values[1] + 3  # a mismatch costs about 4
    assert net.motifs.body[1].bias[:2].tolist() == [-3.0, -3.0]  # only strong matches pass the ReLU at first
    assert net.motifs.body[1].bias[2:].tolist() == [0.0, 0.0]
    assert conv.weight[2:].abs().max() < 1  # the random ones


@pytest.mark.parametrize("change, message", [
    (dict(motif_channels=0), "motif_init needs motif detectors"),
    (dict(motif_channels=3), "needs 4 filters"),
    (dict(motif_init=["WTTTAYRTTTWWTTTAYRTTTW"]), "22 bp, longer than model.motif_kernel=15"),
    (dict(motif_init=["WTTTAXRTTTW"]), r"letters \['X'\]"),
])
def test_motif_init_refusals_name_the_value(change, message):
    opts = dict(depth=2, pool=[16, 4], kernel_size=9, motif_channels=4, motif_kernel=15, coarse_head=False,
                motif_init=["WTTTAYRTTTW", "GTAAACA"])
    opts.update(change)
    with pytest.raises(ValueError, match=message):
        SeqUNet(n_tracks=1, **unet_options(**opts))

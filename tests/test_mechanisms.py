"""Tests that prove the U-Net's mechanisms do what they are for.

Each test would fail if its mechanism were broken: skips that carry nothing,
a crop off by one base, a projection with the wrong width, checkpointing that
changes gradients or saves no memory. The learning tests train small networks
on synthetic 1D tasks for a few seconds, with fixed seeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from seq_unet.model.unet import SeqUNet
from tests.conf_values import unet_options

TINY = dict(depth=3, pool=4, base_channels=16, kernel_size=5, bottleneck_blocks=2, dropout=0.0)


def _options(**kw) -> dict:
    """SeqUNet options: the configured model's, with the max-pool downsampling and concatenated skips
    these tests were calibrated with (the configured model average-pools and adds), changed by ``kw``."""
    return unet_options(**{"down": "maxpool", "skip": "concat", **kw})


def _net(n_tracks: int, **kw) -> SeqUNet:
    return SeqUNet(n_tracks, **_options(**kw))


def _train(net: SeqUNet, batches, steps: int, lr: float = 3e-3) -> SeqUNet:
    opt = torch.optim.Adam(net.parameters(), lr)
    net.train()
    for _ in range(steps):
        x, y, m = batches()
        loss = (((net(x) - y) ** 2) * m).sum() / m.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def spike_edge_batch(g: torch.Generator, n: int, length: int = 128):
    """Channel 0: a 1-bp spike at p; channel 1: a step from 0 to 1 at e; channel 2: noise bases.

    The targets are the spike and the step themselves: base-exact outputs.
    """
    x = torch.zeros(n, 4, length)
    p = torch.randint(8, length - 8, (n,), generator=g)
    e = torch.randint(8, length - 8, (n,), generator=g)
    x[torch.arange(n), 0, p] = 1.0
    x[:, 1] = (torch.arange(length)[None] >= e[:, None]).float()
    x[:, 2] = (torch.rand(n, length, generator=g) < 0.5).float()
    y = x[:, :2].clone()
    return x, y, torch.ones_like(y), p, e


def flood_batch(g: torch.Generator, n: int, length: int = 128, barriers: int = 3):
    """Regions separated by 1-bp barriers (channel 0); one seed base per region carries its colour
    (+1 or -1, channel 1). Target: every base of a region gets its region's colour (barriers masked)."""
    x = torch.zeros(n, 4, length)
    y = torch.zeros(n, 1, length)
    m = torch.ones(n, 1, length)
    for i in range(n):
        while True:
            cuts = sorted(torch.randint(6, length - 6, (barriers,), generator=g).tolist())
            if all(b - a >= 8 for a, b in zip(cuts, cuts[1:])):
                break
        edges = [-1] + cuts + [length]
        for a, b in zip(edges, edges[1:]):
            colour = 1.0 if torch.rand(1, generator=g).item() < 0.5 else -1.0
            seed = int(torch.randint(a + 1, b, (1,), generator=g))
            x[i, 1, seed] = colour
            y[i, 0, a + 1 : b] = colour
        x[i, 0, cuts] = 1.0
        m[i, 0, cuts] = 0.0
    return x, y, m


@pytest.fixture(scope="module")
def spike_models():
    nets = {}
    for skip in ("concat", "none"):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        nets[skip] = _train(_net(2, skip=skip, **TINY), lambda: spike_edge_batch(g, 32)[:3], 150)
    return nets


@pytest.mark.slow
def test_skips_reconstruct_a_spike_at_the_exact_base(spike_models):
    x, y, _, p, _ = spike_edge_batch(torch.Generator().manual_seed(1), 256)
    with torch.no_grad():
        out = {k: net(x) for k, net in spike_models.items()}
    hit = {k: (o[:, 0].argmax(-1) == p).float().mean().item() for k, o in out.items()}
    mse = {k: ((o[:, 0] - y[:, 0]) ** 2).mean().item() for k, o in out.items()}
    assert hit["concat"] >= 0.95, hit
    assert hit["none"] <= 0.5, hit
    assert mse["concat"] < mse["none"] / 4, mse


@pytest.mark.slow
def test_skips_reconstruct_a_sharp_edge(spike_models):
    x, y, _, _, e = spike_edge_batch(torch.Generator().manual_seed(2), 256)
    with torch.no_grad():
        out = {k: net(x)[:, 1] for k, net in spike_models.items()}
    mse = {k: ((o - y[:, 1]) ** 2).mean().item() for k, o in out.items()}
    # the base just before and just after the edge: right side of 0.5 with skips
    i = torch.arange(len(e))
    sharp = {k: ((o[i, e - 1] < 0.5) & (o[i, e] > 0.5)).float().mean().item() for k, o in out.items()}
    assert mse["concat"] < mse["none"] / 4, mse
    assert sharp["concat"] >= 0.95 and sharp["concat"] > sharp["none"] + 0.2, sharp


@pytest.mark.slow
def test_skips_keep_a_one_base_barrier_in_flood_fill():
    acc = {}
    for skip in ("concat", "none"):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        net = _train(_net(1, skip=skip, **TINY), lambda: flood_batch(g, 32), 250)
        x, y, m = flood_batch(torch.Generator().manual_seed(3), 256)
        with torch.no_grad():
            ok = net(x)[:, 0].sign() == y[:, 0].sign()
        barrier = x[:, 0] > 0
        near = torch.zeros_like(barrier)
        for d in (1, 2):  # the two bases on either side of every barrier
            near |= barrier.roll(d, -1) | barrier.roll(-d, -1)
        near &= ~barrier
        acc[skip] = ok[near].float().mean().item()
    assert acc["concat"] >= 0.97, acc
    assert acc["concat"] - acc["none"] >= 0.08, acc


def test_skips_give_gradients_a_short_path():
    """At initialisation, in a deep unnormalised U-Net, the first layer's gradient vanishes without skips.

    (Batch normalisation alone also rescales the gradients; the skip path is
    what keeps a deep network trainable without relying on it.)
    """
    norms = {}
    for skip in ("concat", "add", "none"):
        vals = []
        for seed in range(3):
            torch.manual_seed(seed)
            net = _net(1, depth=7, pool=2, base_channels=8, kernel_size=3, bottleneck_blocks=2, dropout=0.0,
                       norm="none", skip=skip).train()
            x = (torch.rand(4, 4, 1024) < 0.25).float()
            ((net(x) - torch.randn(4, 1, 1024)) ** 2).mean().backward()
            vals.append(net.stem.body[0].weight.grad.norm().item())
        norms[skip] = min(vals) if skip != "none" else max(vals)
    assert norms["concat"] > 1e3 * norms["none"], norms
    assert norms["add"] > 1e3 * norms["none"], norms


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_one_by_one_projection_parameter_count():
    """The 1x1 convolution after concatenation costs 2C*C + C and halves the next block's input width."""
    k = 5
    kw = dict(depth=3, pool=2, base_channels=8, channel_growth=2.0, kernel_size=k, bottleneck_blocks=1,
              skip="concat", merge_norm="none")
    with_p, without = _net(1, **kw, skip_project=True), _net(1, **kw, skip_project=False)
    for i, c in enumerate(with_p.channels[:-1]):
        assert _params(with_p.merges[i]) == 2 * c * c + c
        assert _params(without.merges[i]) == 0
        # decoder block: first conv reads C (projected) or 2C (raw) channels; the raw one also needs a
        # 1x1 shortcut from 2C to C for its residual
        assert _params(without.decoders[i]) - _params(with_p.decoders[i]) == (c * c * k) + (2 * c * c + c)
    # in all: the projection pays for the shortcut it removes, and saves k*C^2 per level
    assert _params(without) - _params(with_p) == sum(k * c * c for c in with_p.channels[:-1])


def test_checkpointing_gives_identical_gradients():
    torch.manual_seed(0)
    kw = dict(depth=3, pool=2, base_channels=8, kernel_size=3, bottleneck_blocks=2, dropout=0.0)
    a = _net(2, **kw, checkpointing=False)
    b = _net(2, **kw, checkpointing=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 4, 64)
    for net in (a, b):
        net.train()
        net(x).pow(2).mean().backward()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=n)


# the network of the memory tests
PEAK_NET = dict(depth=4, pool=4, base_channels=32, kernel_size=9, bottleneck_blocks=2, dropout=0.0)
# argv: 1 (checkpointing) or 0, the SeqUNet options as JSON
PEAK_RSS = textwrap.dedent("""
    import json, sys, torch
    from seq_unet.model.unet import SeqUNet

    def peak_kib():
        # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak over exec
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = SeqUNet(1, **json.loads(sys.argv[2]), checkpointing=sys.argv[1] == "1").train()
    x = torch.randn(2, 4, 2**17)
    before = peak_kib()
    net(x).mean().backward()
    print((peak_kib() - before) * 1024)
""")


def test_checkpointing_lowers_peak_memory():
    """Measured: the peak resident memory of one training step, in fresh processes."""
    options = _options(**PEAK_NET)
    del options["checkpointing"]
    peak = {ck: int(subprocess.run([sys.executable, "-c", PEAK_RSS, ck, json.dumps(options)], capture_output=True,
                                   text=True, check=True).stdout) for ck in ("0", "1")}
    assert peak["1"] < 0.9 * peak["0"], peak


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_checkpointing_lowers_peak_gpu_memory():
    peak = {}
    for ck in (False, True):
        torch.manual_seed(0)
        net = _net(1, **PEAK_NET, checkpointing=ck).cuda().train()
        x = torch.randn(4, 4, 2**17, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        net(x).mean().backward()
        torch.cuda.synchronize()
        peak[ck] = torch.cuda.max_memory_allocated()
    assert peak[True] < 0.9 * peak[False], peak


def _route(net: SeqUNet, level: int) -> SeqUNet:
    """Set weights so that input channel 0 reaches the output only through U-Net level ``level``.

    Every block becomes an identity on channel 0 (zero body, unit shortcut),
    down/up-sampling keep channel 0, and the 1x1 merge at ``level`` takes the
    skip branch while shallower merges take the upsampled branch (``level ==
    depth``: through the bottleneck). A delta in the input then lights up
    exactly the level's pooling cell that contains it, at its coordinates.
    """
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        blocks = [net.stem, *net.encoders, *net.decoders]
        for b in blocks:
            if isinstance(b.shortcut, torch.nn.Conv1d):
                b.shortcut.weight[0, 0, 0] = 1.0
        for i, up in enumerate(net.ups):
            if isinstance(up.op, torch.nn.ConvTranspose1d):
                up.op.weight[0, 0, :] = 1.0
            else:
                up.op.weight[0, 0, up.op.kernel_size[0] // 2] = 1.0
        for i, merge in enumerate(net.merges):
            c = net.channels[i]
            if i < level:
                merge.project.weight[0, 0, 0] = 1.0  # the upsampled branch
            elif i == level:
                merge.project.weight[0, c, 0] = 1.0  # the skip branch (concatenated after the C upsampled)
        net.head.weight[0, 0, 0] = 1.0
    return net.eval()


@pytest.mark.parametrize("up", ["transpose", "nearest"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_delta_input_lands_at_its_own_coordinates(padding, up):
    """Known answer for both alignment modes: kernel 3, two levels of 2x pooling, one bottleneck block.

    Valid padding trims, per side, 2 (stem) + 2*2 (level-1 block) + 2*4 (level-2 block) + 1*4 (bottleneck)
    + 2*2 (level-1 decoder) + 2 (level-0 decoder) = 24 bases (+1 unit per level with nearest upsampling,
    whose convolution follows the interpolation: + 2 + 1 = 27). Level t's feature map starts at input
    base a_t = 2, 6, 14 (0 with same padding) and has cells of J_t = 1, 2, 4 bases.
    """
    net = _net(1, depth=2, pool=2, base_channels=8, kernel_size=3, bottleneck_blocks=1, bottleneck_kernel=3,
               norm="none", merge_norm="none", skip="concat", skip_project=True, dropout=0.0, up=up, padding=padding,
               coarse_head=padding == "same")
    length = 96
    off = {"same": 0, "valid": 24 if up == "transpose" else 27}[padding]
    assert net.geometry.offset(length) == off
    starts = {"same": (0, 0, 0), "valid": (2, 6, 14)}[padding]
    for level, (a, cell) in enumerate(zip(starts, (1, 2, 4))):
        _route(net, level)
        for p in (40, 41, 42, 43, 50):
            x = torch.zeros(1, 4, length)
            x[0, 0, p] = 1.0
            with torch.no_grad():
                y = net(x)[0, 0]
            assert y.shape[-1] == length - 2 * off
            first = a + (p - a) // cell * cell  # the level's cell holding p, in input coordinates
            lit = (y != 0).nonzero().flatten().tolist()
            assert lit == list(range(first - off, first - off + cell)), (padding, up, level, p, lit)

"""SeqUNet: a 1D dilated U-Net mapping one-hot DNA to per-base tracks.

Encoder ("what"): convolution blocks with downsampling widen the context.
Bottleneck: a tower of dilated residual blocks reaches the scale of replication
domains (tens of kilobases). Decoder ("where"): upsampling restores base-level
resolution; skip connections carry each encoder level's high-resolution
features across and give gradients a short path back to the first layers.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from seq_unet.model.blocks import ConvBlock, DilatedResidualBlock, SkipMerge, Up, make_down, make_norm
from seq_unet.model.geometry import Geometry
from seq_unet.motifs import both_strands, check_motif, log_odds


def level_channels(base_channels: int, growth: float, depth: int, max_channels: int | None = None) -> list[int]:
    """Channels per level, ``base * growth**i`` rounded to a multiple of 8 (first level exact)."""
    chans = [base_channels]
    for i in range(1, depth + 1):
        c = int(round(base_channels * growth**i / 8.0)) * 8
        if max_channels:
            c = min(c, max_channels)
        chans.append(max(c, 8))
    return chans


def _coarse_head(channels: int, n_tracks: int, padding: str) -> nn.Conv1d:
    """The bottleneck-to-outputs 1x1 convolution of ``coarse_head``, zero so the network starts as without it."""
    if padding != "same":
        raise ValueError("model.coarse_head needs model.padding: same (the bottleneck then spans the output exactly); "
                         "with padding: valid set model.coarse_head=false")
    conv = nn.Conv1d(channels, n_tracks, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class MotifScanner(nn.Module):
    """A bank of motif detectors read at full resolution and max-pooled to the first level.

    ``channels`` filters of ``kernel`` bases (conv -> norm -> ReLU), then the maximum over each
    pooled stretch: a motif's presence survives the first downsampling, which averaging over
    ``pool`` bases would dilute. Its features join the stem's at the first encoder level.
    """

    def __init__(self, in_channels: int, channels: int, kernel: int, pool: int, norm: str, padding: str,
                 stem_kernel: int, init: Sequence[str] = ()):
        super().__init__()
        if padding != "same":
            raise ValueError("model.motif_channels needs model.padding: same; with padding: valid set "
                             "model.motif_channels=0")
        reach = 2 * stem_kernel - 1  # the stem block's receptive field: the geometry's does not grow
        if kernel < 1 or kernel % 2 != 1 or kernel > reach:
            raise ValueError(f"model.motif_kernel must be odd and at most {reach} (the receptive field of the "
                             f"stem block, 2 * model.kernel_size - 1), got {kernel}")
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, channels, kernel, padding=kernel // 2),
            make_norm(norm, channels),
            nn.ReLU(),
            nn.MaxPool1d(pool),
        )
        if init:
            self.start_from(init)

    @torch.no_grad()
    def start_from(self, motifs: Sequence[str], threshold: float = 3.0) -> None:
        """Set the first filters to the log-odds weights of ``motifs`` and their reverse complements.

        Each consensus (and its other strand, unless palindromic) takes one filter, centred, with
        zero bias; the filters after them keep their random start. With batch normalisation the
        filter's shift starts at ``-threshold``, so that it passes only scores about ``threshold``
        standard deviations above the mean: strong matches, not the background.
        """
        conv, norm = self.body[0], self.body[1]
        kernel = conv.kernel_size[0]
        strands = both_strands(check_motif(m, "model.motif_init entry") for m in motifs)
        if len(strands) > conv.out_channels:
            raise ValueError(f"model.motif_init needs {len(strands)} filters (each motif and its reverse "
                             f"complement: {strands}), more than model.motif_channels={conv.out_channels}")
        for i, m in enumerate(strands):
            if len(m) > kernel:
                raise ValueError(f"model.motif_init entry {m!r} is {len(m)} bp, longer than "
                                 f"model.motif_kernel={kernel}")
            conv.weight[i].zero_()
            conv.weight[i, :4] = torch.from_numpy(log_odds(m, kernel))
            conv.bias[i] = 0.0
            if isinstance(norm, nn.BatchNorm1d):
                norm.bias[i] = -threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SeqUNet(nn.Module):
    """1D dilated U-Net.

    Every option but ``n_tracks`` and ``in_channels`` is a key of ``conf/model`` (their values
    live there; the configured network is built with ``SeqUNet(n_tracks, **options)``).

    Args:
        n_tracks: output channels, one per predicted track.
        depth: number of downsampling levels.
        base_channels: channels at full resolution.
        channel_growth: channel multiplier per level.
        max_channels: cap on channels at any level (None: no cap).
        kernel_size: odd kernel width of the encoder/decoder convolutions.
        pool: downsampling factor, one int for every level or a list per level.
        down: ``maxpool``, ``avgpool`` or strided ``conv``.
        up: ``transpose``, ``nearest`` or ``linear``.
        skip: ``concat``, ``add`` or ``none``.
        skip_project: 1x1 convolution after concatenation (2C -> C).
        norm: ``batch``, ``group``, ``layer`` or ``none``.
        merge_norm: normalise skip merges ``after`` (once, merged), ``before`` (each branch) or ``none``.
        padding: ``same`` (output length = input length) or ``valid`` (unpadded convolutions,
            centre-cropped skips; the output is the input's centre, see :class:`Geometry`).
        bottleneck_blocks: dilated residual blocks at the bottleneck.
        bottleneck_kernel: kernel width of the dilated convolutions.
        dilation_growth: dilation of block ``b`` is ``dilation_growth ** b``.
        dropout: dropout probability inside blocks (also used by MC dropout).
        checkpointing: recompute encoder activations in the backward pass.
        in_channels: input channels (4 for one-hot A, C, G, T).
        coarse_head: also map the bottleneck features to the outputs (a 1x1 convolution, starting
            at zero) and add them, repeated over the bases each bottleneck position stands for, to the
            per-base head: the context-seeing bottleneck gets a one-layer path to the loss instead of
            one through every decoder level (``padding: same`` only).
        motif_channels: filters of a :class:`MotifScanner` whose max-pooled features join the first
            encoder level (0: none; ``padding: same`` only).
        motif_kernel: their width in bases (odd, at most ``2 * kernel_size - 1``).
        motif_init: IUPAC consensus motifs the first detectors start from, each on both strands
            (:meth:`MotifScanner.start_from`); empty: all start at random.

    Shapes:
        ``forward(x)``: ``x`` one-hot ``(batch, 4, length)`` float32 ->
        ``(batch, n_tracks, geometry.output_length(length))``; unusable lengths
        raise a ``ValueError`` naming the nearest usable ones.
    """

    def __init__(
        self,
        n_tracks: int,
        *,
        depth: int,
        base_channels: int,
        channel_growth: float,
        max_channels: int | None,
        kernel_size: int,
        pool: int | Sequence[int],
        down: str,
        up: str,
        skip: str,
        skip_project: bool,
        norm: str,
        merge_norm: str,
        padding: str,
        bottleneck_blocks: int,
        bottleneck_kernel: int,
        dilation_growth: int,
        dropout: float,
        checkpointing: bool,
        coarse_head: bool,
        motif_channels: int,
        motif_kernel: int,
        motif_init: Sequence[str],
        in_channels: int = 4,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"model.depth must be >= 1, got {depth}")
        self.depth = depth
        self.geometry = Geometry.from_options(depth, pool, kernel_size, bottleneck_blocks, bottleneck_kernel,
                                             dilation_growth, up, padding)
        self.factors, self.checkpointing = list(self.geometry.factors), checkpointing
        self.channels = chans = level_channels(base_channels, channel_growth, depth, max_channels)
        self.stem = ConvBlock(in_channels, chans[0], kernel_size, norm, padding=padding)
        self.downs = nn.ModuleList(make_down(down, chans[i], f) for i, f in enumerate(self.factors))
        if motif_init and not motif_channels:
            raise ValueError("model.motif_init needs motif detectors: set model.motif_channels > 0")
        self.motifs = (MotifScanner(in_channels, motif_channels, motif_kernel, self.factors[0], norm, padding,
                                    kernel_size, tuple(motif_init)) if motif_channels else None)
        extra = [motif_channels] + [0] * (depth - 1)
        self.encoders = nn.ModuleList(
            ConvBlock(chans[i] + extra[i], chans[i + 1], kernel_size, norm, dropout, padding) for i in range(depth)
        )
        self.bottleneck = nn.Sequential(*(DilatedResidualBlock(chans[depth], bottleneck_kernel, d, norm, dropout,
                                                               padding) for d in self.geometry.dilations))
        self.ups = nn.ModuleList(
            Up(up, chans[i + 1], chans[i], f, kernel_size, padding) for i, f in enumerate(self.factors)
        )
        self.merges = nn.ModuleList(
            SkipMerge(skip, chans[i], skip_project, norm, merge_norm) for i in range(depth)
        )
        self.decoders = nn.ModuleList(
            ConvBlock(self.merges[i].out_channels, chans[i], kernel_size, norm, dropout, padding)
            for i in range(depth)
        )
        self.head = nn.Conv1d(chans[0], n_tracks, 1)
        self.coarse = _coarse_head(chans[depth], n_tracks, padding) if coarse_head else None

    @property
    def length_multiple(self) -> int:
        return self.geometry.multiple

    @property
    def receptive_field(self) -> int:
        return self.geometry.receptive_field

    def _run(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.geometry.check(x.shape[-1])
        h = self._run(self.stem, x)
        skips = []
        for level, (down, enc) in enumerate(zip(self.downs, self.encoders)):
            skips.append(h)
            h = down(h)
            if level == 0 and self.motifs is not None:
                h = torch.cat([h, self._run(self.motifs, x)], dim=1)
            h = self._run(enc, h)
        h = self.bottleneck(h)
        coarse = None if self.coarse is None else self.coarse(h)
        for i in reversed(range(self.depth)):
            h = self.ups[i](h)
            h = self.merges[i](h, skips[i])
            h = self.decoders[i](h)
        out = self.head(h)
        if coarse is not None:  # each bottleneck position stands for `multiple` bases
            out = out + coarse.repeat_interleave(out.shape[-1] // coarse.shape[-1], dim=-1)
        return out

    def mc_dropout(self, enabled: bool = True) -> None:
        """Keep dropout stochastic in eval mode (Monte Carlo dropout); norms stay in eval mode."""
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.train(enabled)


# model options (conf/model) that configure the head and the input, not the U-Net
HEAD_OPTIONS = ("head", "kinetic", "position_scale")


def split_model_options(model: Mapping) -> tuple[dict, dict]:
    """``model`` options (conf/model) as (U-Net keyword arguments, head and input options)."""
    model = dict(model)
    head = {k: model.pop(k) for k in HEAD_OPTIONS if k in model}
    return model, head


def unet_options() -> tuple[str, ...]:
    """The :class:`SeqUNet` options a model config (``conf/model``) sets: every keyword argument but ``in_channels``."""
    params = inspect.signature(SeqUNet.__init__).parameters
    return tuple(k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and k != "in_channels")


# the options the network's geometry depends on, in the order of Geometry.from_options
GEOMETRY_OPTIONS = ("depth", "pool", "kernel_size", "bottleneck_blocks", "bottleneck_kernel", "dilation_growth", "up",
                    "padding")


def geometry_from_config(model: Mapping) -> Geometry:
    """The :class:`Geometry` of the network a model config (``conf/model``) describes, without building it.

    ``model`` needs the options of :data:`GEOMETRY_OPTIONS`; others are ignored if known, named if not.
    """
    model = {k: v for k, v in model.items() if k not in HEAD_OPTIONS}
    known = unet_options()
    unknown = set(model) - set(known)
    if unknown:
        raise ValueError(f"unknown model options {sorted(unknown)}; known: {sorted(known)}")
    missing = [k for k in GEOMETRY_OPTIONS if k not in model]
    if missing:
        raise ValueError(f"the model options {missing} are missing")
    return Geometry.from_options(*(model[k] for k in GEOMETRY_OPTIONS))

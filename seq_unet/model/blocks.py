"""Building blocks of the 1D U-Net: convolution blocks, dilated residual blocks,
down- and up-sampling, and the skip-merge operations.

With ``padding="same"`` every block keeps its length (padding = dilation *
(kernel - 1) / 2); with ``padding="valid"`` convolutions are unpadded and each
trims ``dilation * (kernel - 1) / 2`` positions from both ends (residual
branches are centre-cropped to match). The length arithmetic of the whole
network lives in :mod:`seq_unet.model.geometry`. All tensors are
``(batch, channels, length)``.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "group", "layer", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """Return a normalisation layer for ``(batch, channels, length)`` inputs.

    Args:
        kind: one of ``batch``, ``group``, ``layer`` or ``none``.
        channels: number of feature channels.
    """
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "layer":
        # GroupNorm with one group normalises over (channels, length), the
        # length-agnostic form of layer normalisation for sequences.
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; choose one of {NORMS}")


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length for an odd kernel."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd for same padding, got {kernel_size}")
    return dilation * (kernel_size - 1) // 2


def conv_padding(padding: str, kernel_size: int, dilation: int = 1) -> int:
    """Zero-padding of a convolution in ``same`` or ``valid`` mode."""
    if padding not in ("same", "valid"):
        raise ValueError(f"unknown padding {padding!r}; choose 'same' or 'valid'")
    pad = same_padding(kernel_size, dilation)
    return pad if padding == "same" else 0


def center_crop(x: torch.Tensor, length: int) -> torch.Tensor:
    """The centre ``length`` positions of ``x`` (equal trims at both ends)."""
    extra = x.shape[-1] - length
    if extra == 0:
        return x
    if extra < 0 or extra % 2:
        raise ValueError(f"cannot centre-crop {x.shape[-1]} positions to {length}")
    return x[..., extra // 2 : extra // 2 + length]


class ConvBlock(nn.Module):
    """Two convolutions (conv -> norm -> GELU) with a residual connection.

    Args:
        in_channels: input channels.
        out_channels: output channels; a 1x1 convolution matches the residual.
        kernel_size: odd kernel width.
        norm: normalisation kind (see :func:`make_norm`).
        dropout: dropout probability after the block (0 disables).
        padding: ``same`` or ``valid`` (the block then trims ``kernel_size - 1`` from each end).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: str, dropout: float = 0.0,
                 padding: str = "same"):
        super().__init__()
        pad = conv_padding(padding, kernel_size)
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=pad),
            make_norm(norm, out_channels),
            nn.GELU(),
            nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad),
            make_norm(norm, out_channels),
        )
        self.shortcut = (
            nn.Identity() if in_channels == out_channels else nn.Conv1d(in_channels, out_channels, 1)
        )
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.dropout(self.act(y + center_crop(self.shortcut(x), y.shape[-1])))


class DilatedResidualBlock(nn.Module):
    """Pre-activation residual block with one dilated convolution.

    Stacked with growing dilation at the bottleneck, these widen the receptive
    field exponentially at linear cost, which is what lets the network see the
    tens-of-kilobases context of replication domains.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, norm: str, dropout: float = 0.0,
                 padding: str = "same"):
        super().__init__()
        self.body = nn.Sequential(
            make_norm(norm, channels),
            nn.GELU(),
            nn.Conv1d(channels, channels, kernel_size, padding=conv_padding(padding, kernel_size, dilation),
                      dilation=dilation),
            make_norm(norm, channels),
            nn.GELU(),
            nn.Conv1d(channels, channels, 1),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return center_crop(x, y.shape[-1]) + y


def make_down(kind: str, channels: int, factor: int) -> nn.Module:
    """Downsample the length by ``factor``: ``maxpool``, ``avgpool`` or strided ``conv``.

    Max-pooling keeps the strongest feature (a motif's presence); average pooling
    keeps its density (composition over a region); a strided convolution learns
    its own weighting.
    """
    if kind == "maxpool":
        return nn.MaxPool1d(factor)
    if kind == "avgpool":
        return nn.AvgPool1d(factor)
    if kind == "conv":
        return nn.Conv1d(channels, channels, factor, stride=factor)
    raise ValueError(f"unknown downsampling {kind!r}; choose 'maxpool', 'avgpool' or 'conv'")


class Up(nn.Module):
    """Upsample the length by ``factor`` and map ``in_channels`` to ``out_channels``.

    ``transpose`` uses a transposed convolution with kernel = stride = factor (no
    checkerboard overlap); ``nearest``/``linear`` interpolate, then convolve.
    With ``valid`` padding the convolution is unpadded and linear interpolation
    drops the ``factor // 2`` positions at each end that would be extrapolated.
    """

    def __init__(self, kind: str, in_channels: int, out_channels: int, factor: int, kernel_size: int,
                 padding: str = "same"):
        super().__init__()
        self.kind, self.factor, self.valid = kind, factor, padding == "valid"
        if kind == "transpose":
            self.op = nn.ConvTranspose1d(in_channels, out_channels, factor, stride=factor)
        elif kind in ("nearest", "linear"):
            self.op = nn.Conv1d(in_channels, out_channels, kernel_size, padding=conv_padding(padding, kernel_size))
        else:
            raise ValueError(f"unknown upsampling {kind!r}; choose 'transpose', 'nearest' or 'linear'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "transpose":
            return self.op(x)
        x = nn.functional.interpolate(x, scale_factor=self.factor, mode=self.kind)
        if self.valid and self.kind == "linear" and self.factor // 2:
            x = x[..., self.factor // 2 : -(self.factor // 2)]
        return self.op(x)


MERGE_NORMS = ("after", "before", "none")


class SkipMerge(nn.Module):
    """Merge decoder features with the encoder's skip features.

    Modes:
        ``concat``: concatenate (2C channels); with ``project`` a 1x1 convolution
            brings them back to C, so the following block does not pay for 2C.
        ``add``: element-wise sum (C channels, no extra parameters).
        ``none``: ignore the skip (the ablation without skip connections).

    ``norm_at`` places a normalisation so that features of different scales
    meet on equal terms: ``after`` normalises the merged features once,
    ``before`` normalises each branch separately before the merge, ``none``
    leaves them as they are. The skip map is centre-cropped to the decoder's
    length (a no-op with ``same`` padding).
    """

    def __init__(self, mode: str, channels: int, project: bool, norm: str, norm_at: str = "after"):
        super().__init__()
        if mode not in ("concat", "add", "none"):
            raise ValueError(f"unknown skip merge {mode!r}; choose 'concat', 'add' or 'none'")
        if norm_at not in MERGE_NORMS:
            raise ValueError(f"unknown merge normalisation {norm_at!r}; choose one of {MERGE_NORMS}")
        self.mode = mode
        merged = 2 * channels if mode == "concat" else channels
        active = mode != "none"
        self.norm = make_norm(norm, merged) if (active and norm_at == "after") else nn.Identity()
        self.norm_x = make_norm(norm, channels) if (active and norm_at == "before") else nn.Identity()
        self.norm_skip = make_norm(norm, channels) if (active and norm_at == "before") else nn.Identity()
        self.project = nn.Conv1d(merged, channels, 1) if (mode == "concat" and project) else None
        self.out_channels = channels if (self.project is not None or mode != "concat") else merged

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return x
        x, skip = self.norm_x(x), self.norm_skip(center_crop(skip, x.shape[-1]))
        merged = torch.cat([x, skip], dim=1) if self.mode == "concat" else x + skip
        merged = self.norm(merged)
        return self.project(merged) if self.project is not None else merged

"""Building blocks of the 1D U-Net: convolution blocks, dilated residual blocks,
down- and up-sampling, and the skip-merge operations.

Every block keeps "same" length (padding = dilation * (kernel - 1) / 2), so the
coordinate arithmetic of the whole network lives in :mod:`seq_unet.model.geometry`.
All tensors are ``(batch, channels, length)``.
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


class ConvBlock(nn.Module):
    """Two convolutions (conv -> norm -> GELU) with a residual connection.

    Args:
        in_channels: input channels.
        out_channels: output channels; a 1x1 convolution matches the residual.
        kernel_size: odd kernel width.
        norm: normalisation kind (see :func:`make_norm`).
        dropout: dropout probability after the block (0 disables).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: str, dropout: float = 0.0):
        super().__init__()
        pad = same_padding(kernel_size)
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
        return self.dropout(self.act(self.body(x) + self.shortcut(x)))


class DilatedResidualBlock(nn.Module):
    """Pre-activation residual block with one dilated convolution.

    Stacked with growing dilation at the bottleneck, these widen the receptive
    field exponentially at linear cost, which is what lets the network see the
    tens-of-kilobases context of replication domains.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, norm: str, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            make_norm(norm, channels),
            nn.GELU(),
            nn.Conv1d(channels, channels, kernel_size, padding=same_padding(kernel_size, dilation), dilation=dilation),
            make_norm(norm, channels),
            nn.GELU(),
            nn.Conv1d(channels, channels, 1),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def make_down(kind: str, channels: int, factor: int) -> nn.Module:
    """Downsample the length by ``factor`` (``maxpool`` or strided ``conv``)."""
    if kind == "maxpool":
        return nn.MaxPool1d(factor)
    if kind == "conv":
        return nn.Conv1d(channels, channels, factor, stride=factor)
    raise ValueError(f"unknown downsampling {kind!r}; choose 'maxpool' or 'conv'")


class Up(nn.Module):
    """Upsample the length by ``factor`` and map ``in_channels`` to ``out_channels``.

    ``transpose`` uses a transposed convolution with kernel = stride = factor (no
    checkerboard overlap); ``nearest``/``linear`` interpolate, then convolve.
    """

    def __init__(self, kind: str, in_channels: int, out_channels: int, factor: int, kernel_size: int):
        super().__init__()
        self.kind, self.factor = kind, factor
        if kind == "transpose":
            self.op = nn.ConvTranspose1d(in_channels, out_channels, factor, stride=factor)
        elif kind in ("nearest", "linear"):
            self.op = nn.Conv1d(in_channels, out_channels, kernel_size, padding=same_padding(kernel_size))
        else:
            raise ValueError(f"unknown upsampling {kind!r}; choose 'transpose', 'nearest' or 'linear'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "transpose":
            return self.op(x)
        x = nn.functional.interpolate(x, scale_factor=self.factor, mode=self.kind)
        return self.op(x)


class SkipMerge(nn.Module):
    """Merge decoder features with the encoder's skip features of equal length.

    Modes:
        ``concat``: concatenate (2C channels); with ``project`` a 1x1 convolution
            brings them back to C, so the following block does not pay for 2C.
        ``add``: element-wise sum (C channels, no extra parameters).
        ``none``: ignore the skip (the ablation without skip connections).

    ``norm_merged`` normalises the merged features once (after concatenation,
    or after the sum), so features of different scales meet on equal terms.
    """

    def __init__(self, mode: str, channels: int, project: bool, norm: str, norm_merged: bool):
        super().__init__()
        if mode not in ("concat", "add", "none"):
            raise ValueError(f"unknown skip merge {mode!r}; choose 'concat', 'add' or 'none'")
        self.mode = mode
        merged = 2 * channels if mode == "concat" else channels
        self.norm = make_norm(norm, merged) if (norm_merged and mode != "none") else nn.Identity()
        self.project = nn.Conv1d(merged, channels, 1) if (mode == "concat" and project) else None
        self.out_channels = channels if (self.project is not None or mode != "concat") else merged

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return x
        merged = torch.cat([x, skip], dim=1) if self.mode == "concat" else x + skip
        merged = self.norm(merged)
        return self.project(merged) if self.project is not None else merged

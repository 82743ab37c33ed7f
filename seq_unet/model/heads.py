"""Output heads: what the U-Net's per-base output channels mean.

``linear``
    One channel per track: the per-base prediction in standardised track units.
``kinetic``
    One initiation-rate channel per track (or one shared by all tracks): the
    U-Net's output ``h`` is a log-rate, ``rate = exp(h + log_base)`` per base
    and minute (0 over unknown DNA and past chromosome ends, where no origin
    can fire). The rates are summed in bins of ``bin_size`` and
    :class:`~seq_unet.model.kinetics.ReplicationTime` turns them into the
    expected replication time ``T`` (minutes). A learned affine map per track,
    ``value = shift + (t0 - T) / spread`` (or ``(T - t0) / spread`` for a track
    that rises with time, ``early_high=false``), gives the track's standardised units;
    ``spread`` stays positive, so earlier replication always means a higher
    (or lower) value, as the assay defines it.

Initialisation of the kinetic head: the U-Net's output starts near 0, so all
positions start with the same rate, the one whose expected time is
``init_fraction`` of the cap (``init_fraction * reach / fork_speed``): mid S
phase, far from both saturated ends (everything replicated at once, or nothing
replicated before the cap), where the gradients vanish. ``spread`` starts at
``init_spread * t0``: fits of this kinetic model with one free rate per 1-kb
bin to the yeast timing tracks (W303, chrII and chrXV; Pearson 0.98) have a
standard deviation of ``T`` of about 0.15 ``t0`` per standard deviation of the
track. Starting at the usual ``spread = t0`` instead leaves the first hundreds
of training steps with almost no signal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from seq_unet.model.kinetics import KineticGeometry, ReplicationTime
from seq_unet.model.unet import geometry_from_config, split_model_options

HEADS = ("linear", "kinetic")
# log-rates above this are clamped (exp(30) per base and minute is far beyond any origin)
MAX_LOG_RATE = 30.0


class LinearHead(nn.Module):
    """The U-Net's output channels are the per-base standardised track values."""

    def __init__(self, n_tracks: int):
        super().__init__()
        self.n_tracks = n_tracks
        self.n_channels = n_tracks
        self.bin_size = 1

    def forward(self, h: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Per-base values ``(batch, n_tracks, length)``."""
        return h

    def per_base(self, values: torch.Tensor, length: int) -> torch.Tensor:
        return values


class KineticHead(nn.Module):
    """Initiation rates -> expected replication time -> track values (see the module docstring).

    Args:
        n_tracks: tracks predicted.
        geometry: bin size, reach and fork speed of the kinetics.
        shared_rates: one initiation-rate track for all tracks (else one per track).
        init_fraction: the starting mean time, as a fraction of the cap.
        init_spread: the starting ``spread``, as a fraction of the starting mean time.
        early_high: the tracks' values rise with earlier replication (relative copy
            number, early/late ratios); False for values that rise with time.
    """

    def __init__(self, n_tracks: int, geometry: KineticGeometry, *, shared_rates: bool, init_fraction: float,
                 init_spread: float, early_high: bool):
        super().__init__()
        if not 0 < init_fraction < 1:
            raise ValueError(f"model.kinetic.init_fraction must be in (0, 1), got {init_fraction}")
        if not init_spread > 0:
            raise ValueError(f"model.kinetic.init_spread must be positive, got {init_spread}")
        self.n_tracks = n_tracks
        self.n_channels = 1 if shared_rates else n_tracks
        self.geometry = geometry
        self.bin_size = geometry.bin_size
        self.time = ReplicationTime(geometry)
        self.sign = 1.0 if early_high else -1.0
        self.t0 = init_fraction * geometry.max_time
        rate0 = geometry.rate_for_time(self.t0) / geometry.bin_size  # per base and minute
        self.log_base = nn.Parameter(torch.full((self.n_channels,), math.log(rate0)))
        self.shift = nn.Parameter(torch.zeros(n_tracks))
        self.log_spread = nn.Parameter(torch.full((n_tracks,), math.log(init_spread * self.t0)))

    def rates(self, h: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Per-base initiation rates ``(batch, n_channels, length)`` per minute (0 where ``known`` is False)."""
        log_rate = (h.float() + self.log_base[:, None]).clamp(max=MAX_LOG_RATE)
        return torch.exp(log_rate) * known[:, None].to(torch.float32)

    def times(self, rates: torch.Tensor) -> torch.Tensor:
        """Expected replication time per bin ``(batch, n_tracks, length // bin_size)`` in minutes."""
        per_bin = F.avg_pool1d(rates, self.bin_size) * self.bin_size
        t = self.time(per_bin)
        return t.expand(-1, self.n_tracks, -1) if t.shape[1] != self.n_tracks else t

    def values(self, times: torch.Tensor) -> torch.Tensor:
        """Standardised track values of times ``(batch, n_tracks, n)``."""
        return self.shift[:, None] + self.sign * (self.t0 - times) / torch.exp(self.log_spread)[:, None]

    def forward(self, h: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Standardised values per bin of ``bin_size`` bases ``(batch, n_tracks, length // bin_size)``."""
        return self.values(self.times(self.rates(h, known)))

    def per_base(self, values: torch.Tensor, length: int) -> torch.Tensor:
        """Bin values ``(batch, n_tracks, n_bins)`` to bases, linear between bin centres (flat beyond the end ones)."""
        if self.bin_size == 1:
            return values
        return F.interpolate(values, size=length, mode="linear", align_corners=False)


def kinetic_options(kinetic: Mapping) -> tuple[KineticGeometry, dict]:
    """``model.kinetic`` as the geometry of the kinetics and the other :class:`KineticHead` arguments."""
    k = dict(kinetic)
    missing = [name for name in ("bin_size", "reach", "fork_speed") if name not in k]
    if missing:
        raise ValueError(f"the model.kinetic options {missing} are missing")
    return KineticGeometry(k.pop("bin_size"), k.pop("reach"), k.pop("fork_speed")), k


def make_head(kind: str, n_tracks: int, kinetic: Mapping | None) -> nn.Module:
    """The head ``kind`` (``linear`` or ``kinetic``) for ``n_tracks`` tracks; ``kinetic``: ``model.kinetic``
    (read by the kinetic head only)."""
    if kind == "linear":
        return LinearHead(n_tracks)
    if kind == "kinetic":
        geometry, k = kinetic_options(kinetic or {})
        return KineticHead(n_tracks, geometry, **k)
    raise ValueError(f"unknown model.head {kind!r}; choose one of {HEADS}")


def loss_margin_bins(geometry: KineticGeometry | None, resolution: int) -> int:
    """Target bins at each inner window edge that the loss leaves out: the kinetics' reach (none without)."""
    return 0 if geometry is None else -(-geometry.reach // int(resolution))


def check_kinetic_window(geometry: KineticGeometry, padding: str, window_length: int, resolution: int) -> None:
    """Raise a ``ValueError`` if a kinetic head with ``geometry`` cannot train on these windows."""
    if padding != "same":
        raise ValueError("the kinetic head needs model.padding=same (its rates must cover the whole window)")
    if window_length % geometry.bin_size:
        raise ValueError(f"data.window_length ({window_length}) must be a multiple of model.kinetic.bin_size "
                         f"({geometry.bin_size})")
    if geometry.bin_size % resolution and resolution % geometry.bin_size:
        raise ValueError(f"model.kinetic.bin_size ({geometry.bin_size}) and data.target_resolution ({resolution}) "
                         "must divide one another")
    shortest = (2 * loss_margin_bins(geometry, resolution) + 1) * resolution
    if window_length < shortest:
        raise ValueError(
            f"data.window_length {window_length} bp leaves no target bin for the loss: the kinetic head sees "
            f"origins up to model.kinetic.reach = {geometry.reach} bp away, so the {geometry.reach} bp at each "
            f"inner window edge are left out; use a window of at least {shortest} bp or a shorter reach")


def check_window(model: Mapping, window_length: int, resolution: int) -> None:
    """Raise a ``ValueError`` if the model a config (``conf/model``) describes cannot train on these windows."""
    unet, opts = split_model_options(model)
    geometry = geometry_from_config(unet)
    kinetic = opts["head"] == "kinetic"
    if kinetic and geometry.padding != "same":
        raise ValueError("the kinetic head needs model.padding=same (its rates must cover the whole window)")
    try:
        geometry.check(window_length)
    except ValueError as exc:
        if geometry.padding != "same":
            raise
        step = math.lcm(geometry.multiple, int(resolution))
        raise ValueError(f"{exc}; with {resolution}-bp target bins the window must be a multiple of "
                         f"lcm({geometry.multiple}, {resolution}) = {step} bp (model=unet_5kb and model=unet_50kb "
                         "take any multiple of 5 or 50 kb)") from exc
    if kinetic:
        check_kinetic_window(kinetic_options(opts["kinetic"])[0], geometry.padding, window_length, resolution)

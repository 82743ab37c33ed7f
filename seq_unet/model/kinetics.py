"""Replication kinetics: from an initiation-rate track to the expected replication time.

Every position ``y`` of a chromosome may start replication (an origin fires) at
an exponentially distributed time with rate ``f(y)``; forks leave every fired
origin in both directions at speed ``v``. A position ``x`` is replicated by time
``t`` as soon as some origin ``y`` fired before ``t - |x - y| / v``, so

    P(x unreplicated at t) = exp( - sum_y f(y) * max(0, t - |x - y| / v) )

and the expected replication time is the integral of that survival function
over ``t`` (Berkemeier, Cook & Boemo 2025, Nat Commun, give this model and a
discretised closed form).

Discretisation (:class:`ReplicationTime`): the rates are summed in bins of
``bin_size`` bases, and each bin's rate sits at its centre. A fork needs
``tau = bin_size / v`` to cross one bin. For bin ``i`` the origins at ring
distance ``k`` (bins ``i - k`` and ``i + k``) add
``r_k = f[i - k] + f[i + k]`` to the hazard from time ``k tau`` on, so the
hazard is piecewise constant, ``F_k = r_0 + ... + r_k`` on ``[k tau, (k + 1) tau)``,
and with ``S_k = tau (F_0 + ... + F_{k-1})`` (the integrated hazard at ``k tau``)

    E[min(T, K tau)] = tau * sum_{k < K} exp(-S_k) * phi(tau F_k),   phi(z) = (1 - e^-z) / z,

exact for point origins at bin centres. ``K = reach / bin_size``: origins
farther than ``reach`` are not seen, and the time is capped at ``K tau``, the
time a fork needs to travel ``reach``. The cap keeps every value finite even
with no origin in reach (then the time is exactly ``K tau``), without a floor
on the rates. ``phi`` is evaluated as ``-expm1(-z) / z`` with its limit 1 at
``z = 0`` (no 0/0, no NaN gradient). The layer runs in float32 (or float64)
even under bf16 autocast.

Only the ratio of time to rate is identifiable from relative timing data: the
fork speed fixes the time unit (minutes for a speed in bases per minute), and
the learned affine map from time to a track's units absorbs any global scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


def phi(z: torch.Tensor) -> torch.Tensor:
    """``(1 - exp(-z)) / z`` for ``z >= 0``, with its limit 1 at ``z = 0`` (finite gradient everywhere)."""
    small = z < 1e-4
    safe = torch.where(small, torch.ones_like(z), z)  # the unused branch never sees 0/0
    return torch.where(small, 1 - z / 2 + z * z / 6, -torch.expm1(-safe) / safe)


@dataclass(frozen=True)
class KineticGeometry:
    """How far the kinetics reach, in bins of the integral, and what that costs a window.

    Args:
        bin_size: bases per bin of the integral (rates summed per bin).
        reach: farthest origin, in bases, that can replicate a position (a multiple of ``bin_size``).
        fork_speed: fork speed in bases per minute.
    """

    bin_size: int
    reach: int
    fork_speed: float

    def __post_init__(self):
        if self.bin_size < 1:
            raise ValueError(f"model.kinetic.bin_size must be >= 1, got {self.bin_size}")
        if self.reach < self.bin_size or self.reach % self.bin_size:
            raise ValueError(f"model.kinetic.reach ({self.reach}) must be a positive multiple of "
                             f"model.kinetic.bin_size ({self.bin_size})")
        if not self.fork_speed > 0:
            raise ValueError(f"model.kinetic.fork_speed must be positive, got {self.fork_speed}")

    @property
    def reach_bins(self) -> int:
        return self.reach // self.bin_size

    @property
    def tau(self) -> float:
        """Minutes a fork needs to cross one bin."""
        return self.bin_size / self.fork_speed

    @property
    def max_time(self) -> float:
        """The cap on the expected time: a fork's travel time over ``reach``."""
        return self.reach_bins * self.tau

    def uniform_time(self, rate_per_bin: float) -> float:
        """Expected time, in minutes, of an infinite line of bins that all fire at ``rate_per_bin``.

        The continuous limit ``sqrt(pi / (rho v)) / 2`` for a rate density ``rho``
        (per base per minute), ignoring the cap.
        """
        rho = rate_per_bin / self.bin_size
        return 0.5 * math.sqrt(math.pi / (rho * self.fork_speed))

    def rate_for_time(self, minutes: float) -> float:
        """The uniform rate per bin whose expected time (continuous limit) is ``minutes``."""
        return math.pi * self.bin_size / (4 * minutes**2 * self.fork_speed)


class ReplicationTime(nn.Module):
    """Expected replication time ``(batch, channels, n)`` of per-bin initiation rates ``(batch, channels, n)``.

    Rates are per minute per bin and must be non-negative. Beyond both ends of
    the input there are no origins: exactly right at a chromosome end, an
    approximation at a window edge inside a chromosome (positions within
    ``reach`` of such an edge miss the origins beyond it; the training loss and
    the prediction tiling leave them out).
    """

    def __init__(self, geometry: KineticGeometry):
        super().__init__()
        self.geometry = geometry

    def forward(self, rates: torch.Tensor) -> torch.Tensor:
        dtype = rates.dtype if rates.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=rates.device.type, enabled=False):
            return expected_time(rates.to(dtype), self.geometry.reach_bins, self.geometry.tau)


def expected_time(rates: torch.Tensor, reach_bins: int, tau: float) -> torch.Tensor:
    """The discretised expected time (see the module docstring) of ``rates`` ``(..., n)``."""
    K = int(reach_bins)
    # every bin with its neighbours within K bins on either side: (..., n, 2K + 1), centre at K
    padded = torch.nn.functional.pad(rates, (K, K))
    win = padded.unfold(-1, 2 * K + 1, 1)
    centre = win[..., K : K + 1]
    # ring k: the bins k away on both sides, k = 1..K-1 (ring K and beyond are not needed)
    rings = win[..., 1:K].flip(-1) + win[..., K + 1 : 2 * K]
    ring = torch.cat([centre, rings], dim=-1)  # (..., n, K)
    hazard = torch.cumsum(ring, dim=-1)  # F_k
    z = hazard * tau
    # S_k = tau * (F_0 + ... + F_{k-1}): the exclusive cumulative sum
    integrated = torch.cumsum(z, dim=-1) - z
    return tau * (torch.exp(-integrated) * phi(z)).sum(-1)

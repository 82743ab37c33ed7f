"""Known answers of the replication-kinetics layer (seq_unet.model.kinetics).

Each test fails if its mechanism breaks: the V around one origin has slope
exactly 1/v, two origins' forks meet where each has even odds of arriving
first, a uniform rate gives the analytic constant, no origin in reach gives the
cap (finite, no NaN), and the gradients are right (gradcheck in float64).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seq_unet.model.kinetics import KineticGeometry, ReplicationTime, expected_time, phi


def _times(rates: np.ndarray, geom: KineticGeometry) -> np.ndarray:
    r = torch.as_tensor(rates, dtype=torch.float64)[None, None]
    return ReplicationTime(geom)(r)[0, 0].numpy()


def test_one_origin_gives_a_v_with_slope_one_over_the_fork_speed():
    geom = KineticGeometry(bin_size=500, reach=400_000, fork_speed=1_800.0)  # tau = 0.2777 min per bin
    n, at, f = 1601, 800, 0.25
    rates = np.zeros(n)
    rates[at] = f
    t = _times(rates, geom)
    # E[T] = |x - y| / v + 1 / f while far below the cap
    d = np.abs(np.arange(n) - at) * geom.bin_size
    near = np.abs(np.arange(n) - at) <= 300
    np.testing.assert_allclose(t[near], d[near] / geom.fork_speed + 1 / f, rtol=0, atol=1e-9)
    slope_bp = np.diff(t[at : at + 300]) / geom.bin_size
    np.testing.assert_allclose(slope_bp, 1 / geom.fork_speed, rtol=1e-9)
    np.testing.assert_allclose(-np.diff(t[at - 300 : at + 1]) / geom.bin_size, 1 / geom.fork_speed, rtol=1e-9)
    assert t.argmin() == at


def _first_from_left(f1: float, f2: float, a: float, b: float) -> float:
    """P(the fork from origin 1, a minutes away, arrives before the one from origin 2, b minutes away)."""
    delta = b - a  # tau1 + a < tau2 + b  <=>  tau1 - tau2 < delta, tau_i ~ Exp(f_i)
    if delta >= 0:
        return 1 - f2 / (f1 + f2) * math.exp(-f1 * delta)
    return f1 / (f1 + f2) * math.exp(-f2 * -delta)


@pytest.mark.parametrize("f1,f2", [(0.2, 0.2), (0.05, 0.4), (0.5, 0.08)])
def test_two_origins_latest_point_is_where_the_forks_meet(f1, f2):
    """d E[T] / dx = (P(right fork first) - P(left fork first)) / v: the maximum is at even odds."""
    geom = KineticGeometry(bin_size=100, reach=400_000, fork_speed=2_000.0)
    n, y1, y2 = 2001, 600, 1400  # origins 80 kb apart
    rates = np.zeros(n)
    rates[y1], rates[y2] = f1, f2
    t = _times(rates, geom)
    x = np.arange(y1, y2 + 1)
    a, b = (x - y1) * geom.tau, (y2 - x) * geom.tau
    p_left = np.array([_first_from_left(f1, f2, ai, bi) for ai, bi in zip(a, b)])
    meet = x[np.argmin(np.abs(p_left - 0.5))]
    latest = y1 + int(np.argmax(t[y1 : y2 + 1]))
    assert abs(latest - meet) <= 1, (latest, meet)
    if f1 == f2:
        assert latest == (y1 + y2) // 2
    else:  # the forks meet closer to the weaker origin
        weaker = y1 if f1 < f2 else y2
        assert abs(latest - weaker) < abs((y1 + y2) / 2 - weaker)


def test_uniform_rate_gives_the_analytic_constant():
    geom = KineticGeometry(bin_size=100, reach=300_000, fork_speed=2_000.0)
    f = geom.rate_for_time(20.0)  # about 1e-4 per bin per minute
    n = 2 * geom.reach_bins + 101
    t = _times(np.full(n, f), geom)
    centre = t[geom.reach_bins : -geom.reach_bins]  # bins that see a full reach of origins on both sides
    # exact value of the discretised model: tau * sum_k exp(-tau f k^2) phi(tau f (2k + 1))
    k = np.arange(geom.reach_bins)
    z = geom.tau * f * (2 * k + 1)
    exact = geom.tau * np.sum(np.exp(-geom.tau * f * k**2) * (1 - np.exp(-z)) / z)
    np.testing.assert_allclose(centre, exact, rtol=1e-12)
    # and the continuous model, sqrt(pi / (rho v)) / 2, within the discretisation error
    assert abs(exact - 20.0) < 0.01
    assert geom.uniform_time(f) == pytest.approx(20.0)


def test_zero_rate_everywhere_gives_the_cap_without_nan():
    geom = KineticGeometry(bin_size=1_000, reach=64_000, fork_speed=2_000.0)
    rates = torch.zeros(2, 3, 200, requires_grad=True)
    t = ReplicationTime(geom)(rates)
    assert torch.isfinite(t).all()
    torch.testing.assert_close(t, torch.full_like(t, geom.max_time))
    t.sum().backward()
    assert torch.isfinite(rates.grad).all()
    assert (rates.grad < 0).all()  # any origin would make every bin in reach earlier


def test_origins_beyond_the_reach_are_not_seen():
    geom = KineticGeometry(bin_size=1_000, reach=10_000, fork_speed=2_000.0)
    rates = np.zeros(100)
    rates[50] = 1.0
    t = _times(rates, geom)
    assert (t[np.abs(np.arange(100) - 50) >= geom.reach_bins] == geom.max_time).all()
    assert (t[np.abs(np.arange(100) - 50) < geom.reach_bins] < geom.max_time).all()


def test_phi_is_finite_with_its_limit_at_zero():
    z = torch.tensor([0.0, 1e-12, 1e-5, 1e-4, 0.5, 30.0, 1e4], dtype=torch.float64, requires_grad=True)
    y = phi(z)
    expected = torch.tensor([1.0] + [(-math.expm1(-v)) / v for v in z.tolist()[1:]], dtype=torch.float64)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=0)
    y.sum().backward()
    assert torch.isfinite(z.grad).all()
    assert z.grad[0].item() == pytest.approx(-0.5)


def test_gradcheck_float64():
    torch.manual_seed(0)
    rates = (torch.rand(2, 2, 40, dtype=torch.float64) * 0.05).requires_grad_()
    with torch.no_grad():
        rates[0, 0, :10] = 0.0  # zero-rate stretches take the phi limit branch
    assert torch.autograd.gradcheck(lambda r: expected_time(r, 8, 0.5), (rates,), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_float32_and_bf16_autocast_stay_finite(dtype):
    geom = KineticGeometry(bin_size=1_000, reach=64_000, fork_speed=2_000.0)
    torch.manual_seed(0)
    log_rates = torch.randn(2, 1, 300) * 6 - 6  # rates from 1e-8 to about 1e5 per bin
    log_rates[0, 0, 100:200] = -80.0  # underflows to exactly 0
    log_rates.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        t = ReplicationTime(geom)(torch.exp(log_rates).to(dtype))
    assert t.dtype == torch.float32
    assert torch.isfinite(t).all() and (t >= 0).all() and (t <= geom.max_time + 1e-4).all()
    t.sum().backward()
    assert torch.isfinite(log_rates.grad).all()


def test_geometry_refuses_inconsistent_settings():
    with pytest.raises(ValueError, match="multiple"):
        KineticGeometry(bin_size=1_000, reach=64_500, fork_speed=2_000.0)
    with pytest.raises(ValueError, match="fork_speed"):
        KineticGeometry(bin_size=1_000, reach=64_000, fork_speed=0.0)

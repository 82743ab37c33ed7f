"""Known answers for the masked training loss (SeqUNetModule._loss): only valid bins count,
averaged over the number of valid bins, as squared error or as Huber loss (delta 1)."""

from __future__ import annotations

import pytest
import torch

from seq_unet.lit import SeqUNetModule
from tests.conf_values import linear_model, train_options

MODEL = linear_model(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=2, dropout=0.0)

# one window, two tracks, four 100-bp bins; predictions, targets and the mask of valid bins
PRED = torch.tensor([[[0.0, 1.0, 2.0, 3.0],
                      [1.0, 1.0, 1.0, 1.0]]])
TARGET = torch.tensor([[[0.5, 3.0, 2.0, -1.0],
                        [1.0, 0.0, 4.0, 1.0]]])
MASK = torch.tensor([[[True, True, False, True],
                      [False, True, True, False]]])
# errors of the valid bins: 0 - 0.5, 1 - 3, 3 - (-1); 1 - 0, 1 - 4
ERRORS = [-0.5, -2.0, 4.0, 1.0, -3.0]


def _module(loss: str) -> SeqUNetModule:
    module = SeqUNetModule(["a", "b"], 400, 100, [0.0, 0.0], [1.0, 1.0], model=MODEL, **train_options(loss=loss))
    assert (module.bin_from, module.bin_to) == (0, 4)  # same padding: every bin is covered
    return module


def _batch() -> dict:
    return {"x": torch.zeros(1, 4, 400), "y": TARGET.clone(), "mask": MASK.clone()}


def _fixed_predictions(module: SeqUNetModule, pred: torch.Tensor) -> None:
    module._binned = lambda x: pred  # the loss sees exactly these binned predictions


def test_mse_averages_the_squared_errors_of_valid_bins_only():
    module = _module("mse")
    _fixed_predictions(module, PRED)
    loss, pooled = module._loss(_batch())
    expected = sum(e * e for e in ERRORS) / len(ERRORS)  # (0.25 + 4 + 16 + 1 + 9) / 5 = 6.05
    assert expected == pytest.approx(6.05)
    assert loss.item() == pytest.approx(expected)
    assert torch.equal(pooled, PRED)


def test_huber_is_quadratic_within_one_and_linear_beyond():
    module = _module("huber")
    _fixed_predictions(module, PRED)
    loss, _ = module._loss(_batch())
    # Huber, delta 1: e^2 / 2 where |e| <= 1, |e| - 1/2 beyond
    per_bin = [0.125, 1.5, 3.5, 0.5, 2.5]
    assert per_bin == [e * e / 2 if abs(e) <= 1 else abs(e) - 0.5 for e in ERRORS]
    assert loss.item() == pytest.approx(sum(per_bin) / 5)  # 8.125 / 5


def test_values_under_masked_bins_do_not_matter():
    module = _module("mse")
    _fixed_predictions(module, PRED)
    batch = _batch()
    batch["y"] = torch.where(MASK, TARGET, torch.full_like(TARGET, 1e6))
    loss, _ = module._loss(batch)
    assert loss.item() == pytest.approx(6.05)


def test_no_valid_bin_gives_zero_not_nan():
    module = _module("mse")
    _fixed_predictions(module, PRED)
    batch = _batch()
    batch["mask"] = torch.zeros_like(MASK)
    loss, _ = module._loss(batch)
    assert loss.item() == 0.0


def test_the_network_path_gives_the_masked_mean_of_its_own_binned_output():
    torch.manual_seed(0)
    module = _module("mse").eval()
    batch = _batch()
    batch["x"][:, 0] = 1.0  # all A
    with torch.no_grad():
        loss, pooled = module._loss(batch)
        binned = module(batch["x"]).reshape(1, 2, 4, 100).mean(-1)  # per-base output averaged in 100-bp bins
    torch.testing.assert_close(pooled, binned)
    d = (binned - TARGET)[MASK]
    torch.testing.assert_close(loss, (d * d).mean())


def test_an_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        _module("l1")

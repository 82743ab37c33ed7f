"""The shipped configuration's values, for tests that build the library's objects themselves.

The library has no values of its own: every setting comes from the YAML files of ``conf/``.
These helpers give a test the configured values, changed where it needs a small or special network.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from seq_unet.model.unet import split_model_options

CONF = Path(__file__).resolve().parent.parent / "conf"
# SeqUNetModule's settings from the train section (conf/config.yaml)
MODULE_TRAIN_KEYS = ("lr", "weight_decay", "warmup_fraction", "loss", "warmup_start_factor", "min_lr_ratio")


def _yaml(name: str) -> dict:
    return yaml.safe_load((CONF / name).read_text())


def conf_model(**changes) -> dict:
    """The model config ``conf/model/unet.yaml`` with ``changes`` (``kinetic`` changes merge into its own)."""
    model = _yaml("model/unet.yaml")
    if "kinetic" in changes:
        changes = {**changes, "kinetic": {**model["kinetic"], **changes["kinetic"]}}
    return {**model, **changes}


# The linear head without the bottleneck path: for tests of mechanisms that do not depend on the head
# (stitching, Monte Carlo dropout, checkpoints, ...) on windows far shorter than the kinetic head's reach
LINEAR = {"head": "linear", "coarse_head": False}
LINEAR_OVERRIDES = [f"model.{k}={str(v).lower()}" for k, v in LINEAR.items()]


def linear_model(**changes) -> dict:
    """:func:`conf_model` with the linear head and no bottleneck path (:data:`LINEAR`), and ``changes``."""
    return conf_model(**{**LINEAR, **changes})


def unet_options(**changes) -> dict:
    """:class:`~seq_unet.model.unet.SeqUNet`'s keyword arguments from ``conf/model/unet.yaml``, with ``changes``."""
    return split_model_options(conf_model(**changes))[0]


def train_options(**changes) -> dict:
    """:class:`~seq_unet.lit.SeqUNetModule`'s optimiser and loss settings (``conf/config.yaml``), with ``changes``."""
    train = _yaml("config.yaml")["train"]
    return {**{k: train[k] for k in MODULE_TRAIN_KEYS}, **changes}

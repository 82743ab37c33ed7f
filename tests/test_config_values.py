"""Values live in the YAML files of conf/ only: the schema and the library hold none that could drift.

The schema (seq_unet/config.py) gives each key its type and no value: ``MISSING``
for every key conf/ sets, ``None`` only for keys a config may leave unset. The
classes and functions the steps call with configured values have no default, or
one equal to conf/'s value.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import MISSING, OmegaConf

from seq_unet.cli.main import config_dir
from seq_unet.config import Config, register
from seq_unet.data.datamodule import WindowDataModule
from seq_unet.data.windows import WindowSpec
from seq_unet.evaluate.baseline import fit_baselines
from seq_unet.evaluate.genome_val import GenomeValidation
from seq_unet.evaluate.origins import peak_enrichment
from seq_unet.evaluate.sweep import summarise
from seq_unet.lit import SeqUNetModule
from seq_unet.model.heads import KineticHead
from seq_unet.model.kinetics import KineticGeometry
from seq_unet.model.unet import HEAD_OPTIONS, SeqUNet, unet_options
from seq_unet.predict.browser import write_track_hub
from seq_unet.predict.genome import predict_genome
from tests.conf_values import MODULE_TRAIN_KEYS, conf_model, train_options

# None-default keys that conf/ sets to a value: a data config may leave them out (README, "Your own genome")
MAY_BE_LEFT_OUT = {"data.ucsc_assembly"}
KINETIC_GEOMETRY = ("bin_size", "reach", "fork_speed")


@pytest.fixture(scope="module")
def cfg():
    register()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config")


def _value(cfg, key: str):
    node = OmegaConf.select(cfg, key, throw_on_missing=True)
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _fields(schema, prefix: str = ""):
    """Every key of the schema dataclass and of the sections in it: (dotted key, its type, its default)."""
    types = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        key, kind = f"{prefix}{f.name}", types[f.name]
        if dataclasses.is_dataclass(kind):  # a section: a group's node (MISSING) or its own keys
            assert f.default is MISSING or f.default_factory is kind, f"{key}: a section holds no values itself"
            yield from _fields(kind, f"{key}.")
        else:
            assert f.default_factory is dataclasses.MISSING, f"{key} has a value (a default factory) in the schema"
            yield key, kind, f.default


def test_the_schema_holds_no_values():
    keys = []
    for key, kind, default in _fields(Config):
        keys.append(key)
        assert default is MISSING or default is None, f"{key} has the value {default!r} in the schema"
        if default is None:
            assert type(None) in typing.get_args(kind), f"{key}: a None default needs an Optional type"
    assert {"data.window_length", "model.depth", "model.kinetic.reach", "train.lr", "predict.batch_size",
            "callbacks.ema.decay", "logger.project"} <= set(keys)


def test_a_none_in_the_schema_is_a_key_conf_leaves_unset(cfg):
    for key, _, default in _fields(Config):
        if default is None and key not in MAY_BE_LEFT_OUT:
            assert OmegaConf.select(cfg, key) is None, f"conf/ sets {key}: the schema should say MISSING"


def _checked(fn, values: dict, cfg) -> None:
    """``fn``'s parameters named in ``values`` ({parameter: config key}) exist, and any default equals conf/'s."""
    params = inspect.signature(fn).parameters
    for name, key in values.items():
        assert name in params, f"{fn.__qualname__} has no parameter {name} (for {key})"
        default = params[name].default
        if default is not inspect.Parameter.empty:
            assert default == _value(cfg, key), (
                f"{fn.__qualname__}({name}={default!r}) differs from {key}: {_value(cfg, key)!r} in conf/")


def test_the_unet_takes_exactly_the_model_config_without_defaults(cfg):
    model = set(cfg.model) - set(HEAD_OPTIONS)
    assert set(unet_options()) == model
    params = inspect.signature(SeqUNet.__init__).parameters
    assert [k for k in model if params[k].default is not inspect.Parameter.empty] == []


def test_the_kinetic_head_takes_exactly_model_kinetic(cfg):
    head = {k for k in inspect.signature(KineticHead.__init__).parameters if k not in ("self", "n_tracks", "geometry")}
    assert head | set(KINETIC_GEOMETRY) == set(cfg.model.kinetic)
    _checked(KineticHead.__init__, {k: f"model.kinetic.{k}" for k in head}, cfg)
    _checked(KineticGeometry, {k: f"model.kinetic.{k}" for k in KINETIC_GEOMETRY}, cfg)


@pytest.mark.parametrize("fn, values", [
    (SeqUNetModule.__init__, {"model": "model", **{k: f"train.{k}" for k in MODULE_TRAIN_KEYS}}),
    (WindowDataModule.__init__, {"batch_size": "train.batch_size", "num_workers": "train.num_workers",
                                 "reverse_complement": "train.reverse_complement",
                                 "random_shift": "train.random_shift", "seed": "seed",
                                 "position_scale": "model.position_scale"}),
    (GenomeValidation.__init__, {"batch_size": "predict.batch_size", "blend": "predict.blend",
                                 "crop": "predict.crop"}),
    (WindowSpec, {"length": "data.window_length", "stride": "data.stride", "resolution": "data.target_resolution",
                  "min_valid_fraction": "data.min_valid_fraction", "max_shift": "data.max_shift"}),
    (fit_baselines, {"bin_size": "evaluate.baseline_bin"}),
    (peak_enrichment, {"n_peaks": "evaluate.origins.peaks", "radius": "evaluate.origins.radius",
                       "separation": "evaluate.origins.separation", "motif": "evaluate.origins.motif"}),
    (summarise, {"resolution": "sweep.resolution", "predict": "sweep.predict"}),
    (write_track_hub, {"email": "browser.hub_email"}),
], ids=lambda x: x.__qualname__.removesuffix(".__init__") if callable(x) else "conf")
def test_library_defaults_are_absent_or_the_configured_values(cfg, fn, values):
    _checked(fn, values, cfg)


def test_predict_genome_defaults_are_the_configured_values(cfg):
    params = inspect.signature(predict_genome).parameters
    options = {k: f"predict.{k}" for k in cfg.predict if k in params and k not in ("ckpt", "fasta", "out_dir")}
    # every prediction setting reaches predict_genome (allow_mismatch is the step's own check)
    assert set(cfg.predict) - set(options) == {"ckpt", "fasta", "out_dir", "allow_mismatch"}
    _checked(predict_genome, {**options, "seed": "seed"}, cfg)


def test_the_test_helpers_give_the_composed_values(cfg):
    assert conf_model() == _value(cfg, "model")
    assert train_options() == {k: _value(cfg, f"train.{k}") for k in MODULE_TRAIN_KEYS}

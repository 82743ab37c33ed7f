"""Configuration errors: each a clear message from the command, naming the key or value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from seq_unet.cli.main import config_dir
from seq_unet.config import missing_values, register
from tests.conf_values import LINEAR_OVERRIDES

EXE = str(Path(sys.executable).parent / "seq-unet")
GOOD = {"name": "tiny", "blacklist": None, "val_chroms": ["chrC"], "test_chroms": ["chrB"], "window_length": 4000,
        "stride": 2000, "max_shift": 0, "target_resolution": 100, "min_valid_fraction": 0.5}


def _data_config(tmp_path: Path, tiny_genome: dict, **changes) -> list[str]:
    data = {**GOOD, "fasta": str(tiny_genome["fasta"]), "tracks": {"gc": str(tiny_genome["tracks"]["gc"])}}
    for key, value in changes.items():
        if value is None and key not in GOOD:
            data.pop(key, None)
        else:
            data[key] = value
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "tiny.yaml").write_text(yaml.safe_dump(data))
    return ["data=tiny", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model.depth=2", "model.pool=4",
            *LINEAR_OVERRIDES]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env=dict(os.environ, HYDRA_FULL_ERROR="0"))


def test_the_shipped_configs_fit_the_schema():
    register()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        for experiment in [None] + sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml")):
            cfg = compose("config", overrides=[f"experiment={experiment}"] if experiment else [])
            # the ablation variants keep the default depth; scale is a smaller model for pipeline measurements
            assert cfg.model.depth == (3 if experiment == "scale" else 4) and cfg.data.name == "sacCer3"


@pytest.mark.parametrize("args, message", [
    (["model.dept=3"], "Key 'dept' not in 'ModelConfig'"),
    (["data.window_length=abc"], "Value 'abc' of type 'str' could not be converted to Integer"),
    (["predict.mc_sample=3"], "Key 'mc_sample' not in 'PredictConfig'"),
    (["train.batch_size=1.5"], "could not be converted to Integer"),
    (["callbacks.early_stoping.patience=3"], "Key 'early_stoping' not in 'CallbacksConfig'"),
    (["callbacks.checkpoint.top=3"], "Key 'top' not in 'CheckpointCallbackConfig'"),
    (["logger=csvv"], "Could not find 'logger/csvv'"),
    (["logger.projet=x"], "Key 'projet' not in 'LoggerConfig'"),
])
def test_a_misspelt_key_or_wrong_type_on_the_command_line(tmp_path, args, message):
    out = _run("windows", *args, cwd=tmp_path)
    assert out.returncode != 0 and message in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and not (tmp_path / "results").exists()


def test_a_misspelt_key_in_a_data_config_file(tiny_genome, tmp_path):
    common = _data_config(tmp_path, tiny_genome, val_chrom=["chrC"], val_chroms=None)
    out = _run("genome", *common, cwd=tmp_path)
    assert out.returncode != 0 and "Key 'val_chrom' not in 'DataConfig'" in out.stderr
    assert "In 'data/tiny'" in out.stderr and "Traceback" not in out.stderr


def test_a_data_config_without_a_required_key(tiny_genome, tmp_path):
    common = _data_config(tmp_path, tiny_genome)
    text = (tmp_path / "conf/data/tiny.yaml").read_text()
    kept = (li for li in text.splitlines() if "window_length" not in li)
    (tmp_path / "conf/data/tiny.yaml").write_text("\n".join(kept))
    out = _run("genome", *common, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "the configuration has no value for data.window_length (data config 'tiny'" in out.stderr


def test_a_model_config_without_a_key(tiny_genome, tmp_path):
    common = _data_config(tmp_path, tiny_genome)
    text = (config_dir() / "model" / "unet.yaml").read_text()
    (tmp_path / "conf/model").mkdir()
    (tmp_path / "conf/model/mine.yaml").write_text("\n".join(li for li in text.splitlines()
                                                             if not li.startswith("dropout:")))
    out = _run("genome", *common, "model=mine", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "the configuration has no value for model.dropout (conf/model/unet.yaml shows every key)" in out.stderr


def test_a_value_no_yaml_file_sets_is_named_with_where_to_find_it():
    register()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        assert missing_values(compose("config")) is None
        cfg = compose("config", overrides=["train.lr=???", "data.stride=???", "callbacks.ema.decay=???"])
    assert missing_values(cfg) == (
        "the configuration has no value for callbacks.ema.decay, data.stride, train.lr (data config 'sacCer3'; "
        "conf/callbacks/default.yaml, conf/config.yaml and conf/data/sacCer3.yaml show every key)")


@pytest.mark.parametrize("changes, step, message", [
    ({"val_chroms": ["chrC"], "test_chroms": ["chrB", "chrC"]}, "windows",
     "chromosomes ['chrC'] are listed for both validation and test"),
    ({"val_chroms": ["chrA", "chrB"], "test_chroms": ["chrC", "chrD"]}, "windows",
     "no chromosome is left for training"),
    ({"window_length": 50_000, "stride": 50_000}, "windows",
     "window length 50000 bp is longer than every chromosome (the longest, chrA, has 40000 bp)"),
    ({"stride": 150}, "windows", "must be multiples of the target resolution (100)"),
])
def test_bad_split_and_window_settings(tiny_genome, tmp_path, changes, step, message):
    common = _data_config(tmp_path, tiny_genome, **changes)
    assert _run("genome", *common, cwd=tmp_path).returncode == 0
    out = _run(step, *common, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "results/tiny/windows/windows.tsv").exists()


def test_trainer_arguments_are_checked_by_lightning(tiny_genome, tmp_path):
    common = _data_config(tmp_path, tiny_genome)
    for step in ("genome", "windows", "extract"):
        assert _run(step, *common, cwd=tmp_path).returncode == 0, step
    out = _run("train", *common, "+trainer.max_epoch=3", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "trainer config (pytorch_lightning.Trainer arguments)" in out.stderr and "max_epoch" in out.stderr

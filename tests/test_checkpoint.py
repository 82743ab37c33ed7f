"""Checkpoints: safe loading, clear errors for bad files, provenance checks before prediction."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq_unet import __version__
from seq_unet.checkpoint import (
    EARLIER_MODEL_OPTIONS,
    EARLIER_SETTINGS,
    KEY,
    load_module,
    make_provenance,
    mismatches,
    read_checkpoint,
)
from seq_unet.errors import InputError
from seq_unet.io.genome import file_md5
from seq_unet.lit import SeqUNetModule
from tests.conf_values import LINEAR_OVERRIDES, linear_model, train_options

MODEL = linear_model(depth=2, pool=4, base_channels=8, kernel_size=5, bottleneck_blocks=2)
EXE = str(Path(sys.executable).parent / "seq-unet")


def _module(tracks=("gc", "noisy"), window=4000) -> SeqUNetModule:
    torch.manual_seed(0)
    return SeqUNetModule(tracks=list(tracks), window_length=window, target_resolution=100,
                         target_mean=[1.0] * len(tracks), target_std=[0.5] * len(tracks), model=MODEL,
                         **train_options())


def _save(module: SeqUNetModule, path: Path, provenance: dict | None = None) -> Path:
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    if provenance is not None:
        ckpt[KEY] = provenance
    torch.save(ckpt, path)
    return path


def _provenance(module: SeqUNetModule, genome_md5="g" * 32, track_md5=None, version=__version__) -> dict:
    manifest = {"genome_md5": genome_md5, "track_md5": track_md5 or {}, "tracks": module.tracks,
                "window_length": module.hparams.window_length, "target_resolution": 100}
    prov = make_provenance({"seed": 0, "model": MODEL}, manifest, "d" * 32)
    prov["version"] = version
    return prov


class _RunsCode:
    """Unpickling this object calls Path.touch: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.ckpt"
    module = _module()
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "payload": _RunsCode(marker)}, path)
    with pytest.raises(InputError, match="could run arbitrary code"):
        read_checkpoint(path)
    with pytest.raises(InputError, match="could run arbitrary code"):
        load_module(path)
    assert not marker.exists()
    # control: the unsafe way of loading does run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_saved_module_round_trips(tmp_path):
    module = _module()
    path = _save(module, tmp_path / "m.ckpt", _provenance(module))
    loaded = load_module(path)
    assert not loaded.training and loaded.tracks == ["gc", "noisy"]
    x = torch.rand(1, 4, 4096)
    torch.testing.assert_close(loaded(x), module.eval()(x))


@pytest.mark.parametrize("damage, message", [
    ("truncate", "damaged or not a PyTorch checkpoint"),
    ("random", "damaged or not a PyTorch checkpoint"),
    ("empty", "damaged or not a PyTorch checkpoint"),
    ("not_ours", "is not a seq-unet checkpoint"),
    ("folder", "is a folder"),
    ("missing", "does not exist"),
])
def test_bad_checkpoint_files_are_clear_errors(tmp_path, damage, message):
    path = tmp_path / "m.ckpt"
    _save(_module(), path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "random":
        path.write_bytes(os.urandom(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not_ours":
        torch.save({"weights": torch.zeros(3)}, path)
    elif damage == "folder":
        path.unlink()
        path.mkdir()
    elif damage == "missing":
        path.unlink()
    with pytest.raises(InputError, match=message) as err:
        load_module(path)
    assert str(path) in str(err.value)


def test_a_checkpoint_of_another_version_names_both_versions(tmp_path):
    module = _module()
    path = tmp_path / "old.ckpt"
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            KEY: _provenance(module, version="0.0.3")}
    ckpt["hyper_parameters"]["model"] = {**MODEL, "norm_merged": True}  # a setting this version lacks
    torch.save(ckpt, path)
    with pytest.raises(InputError, match=r"written by seq-unet 0\.0\.3 and does not fit this version"):
        load_module(path)
    assert any("written by seq-unet 0.0.3" in m for m in mismatches(ckpt))


def test_mismatches_name_each_difference():
    module = _module()
    ckpt = {"hyper_parameters": dict(module.hparams), KEY: _provenance(module, track_md5={"gc": "a", "noisy": "b"})}
    assert mismatches(ckpt, window_length=4000, tracks=["noisy", "gc"], genome_md5="g" * 32,
                      track_md5={"gc": "a", "noisy": "b"}) == []
    assert mismatches(ckpt) == []
    found = mismatches(ckpt, window_length=8000, tracks=["gc", "rt"], genome_md5="h" * 32,
                       track_md5={"gc": "a", "noisy": "c"})
    assert len(found) == 4
    assert "trained on 4000-bp windows, the prediction asks for 8000 bp" in found[0]
    assert "['gc', 'noisy'], the configuration names ['gc', 'rt']" in found[1]
    assert "another genome" in found[2] and "['noisy'] changed" in found[3]
    # no provenance recorded (a hand-made checkpoint): only the settings can be compared
    bare = {"hyper_parameters": dict(module.hparams)}
    assert mismatches(bare, genome_md5="h" * 32) == []
    assert len(mismatches(bare, window_length=8000)) == 1


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env=dict(os.environ, HYDRA_FULL_ERROR="0"))


def test_predict_refuses_a_checkpoint_made_for_other_data(tiny_genome, tmp_path):
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    tracks = tiny_genome["tracks"]
    (conf / "tiny.yaml").write_text(
        f"name: tiny\nfasta: {tiny_genome['fasta']}\ntracks:\n  gc: {tracks['gc']}\n  noisy: {tracks['noisy']}\n"
        "blacklist: null\nval_chroms: [chrC]\ntest_chroms: [chrB]\n"
        "window_length: 4000\nstride: 2000\nmax_shift: 0\ntarget_resolution: 100\nmin_valid_fraction: 0.5\n")
    common = ["data=tiny", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model.depth=2", "model.pool=4",
              *LINEAR_OVERRIDES,
              "predict.device=cpu", "predict.out_dir=pred"]
    assert _run("genome", *common, cwd=tmp_path).returncode == 0
    genome_md5 = file_md5(tmp_path / "results/tiny/genome/genome.fa")
    track_md5 = {t: file_md5(p) for t, p in tracks.items()}

    # trained on this very genome and these tracks: predicted without complaint
    module = _module()
    good = _save(module, tmp_path / "good.ckpt", _provenance(module, genome_md5, track_md5))
    out = _run("predict", *common, f"predict.ckpt={good}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "pred" / "gc.bw").exists()

    # other tracks, another genome: refused, every difference named, nothing written
    other = _module(tracks=("rt",))
    bad = _save(other, tmp_path / "bad.ckpt", _provenance(other, "x" * 32, {"rt": "y"}))
    out = _run("predict", *common, f"predict.ckpt={bad}", "predict.out_dir=pred2", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"checkpoint {bad} does not fit this prediction of data config 'tiny'" in out.stderr
    assert "it predicts tracks ['rt'], the configuration names ['gc', 'noisy']" in out.stderr
    assert "trained on another genome" in out.stderr and "predict.allow_mismatch=true" in out.stderr
    assert not (tmp_path / "pred2").exists()
    # an explicit window length other than the trained one
    out = _run("predict", *common, f"predict.ckpt={good}", "predict.window_length=8192", "predict.out_dir=pred3",
               cwd=tmp_path)
    assert out.returncode == 2 and "trained on 4000-bp windows, the prediction asks for 8192 bp" in out.stderr
    # told otherwise: predicts, and the log says what did not fit
    out = _run("predict", *common, f"predict.ckpt={bad}", "predict.out_dir=pred2", "predict.allow_mismatch=true",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "predicting anyway" in out.stdout + out.stderr and (tmp_path / "pred2" / "rt.bw").exists()
    # a corrupt checkpoint is a clear error from the command, not a traceback
    (tmp_path / "broken.ckpt").write_bytes(good.read_bytes()[:1000])
    out = _run("predict", *common, f"predict.ckpt={tmp_path / 'broken.ckpt'}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "damaged" in out.stderr


def test_a_checkpoint_from_before_later_settings_loads_at_their_earlier_values(tmp_path):
    module = _module().eval()
    hp = {k: v for k, v in module.hparams.items() if k not in EARLIER_SETTINGS}
    hp["model"] = {k: v for k, v in hp["model"].items() if k not in EARLIER_MODEL_OPTIONS}
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hp}, path)
    loaded = load_module(path)
    assert {k: loaded.hparams[k] for k in EARLIER_SETTINGS} == EARLIER_SETTINGS
    assert {k: loaded.hparams.model[k] for k in EARLIER_MODEL_OPTIONS} == EARLIER_MODEL_OPTIONS
    x = torch.randn(1, 4, 4000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), module(x))

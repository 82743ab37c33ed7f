"""Checkpoints: what a trained model records about its making, and a safe way to load it.

Every checkpoint written by ``seq-unet train`` carries, under the key
``"seq_unet"``, its provenance: the package version, the whole resolved
configuration, and the checksums of the dataset manifest, the prepared genome
and each track file. Prediction compares that record with what it is asked to
do and refuses a mismatch (a model trained on other tracks, another window
length, another genome or other data, or by an incompatible version) unless
``predict.allow_mismatch=true``.

Checkpoints are read with ``torch.load(..., weights_only=True)``: only tensors
and plain Python values are unpickled, so a checkpoint from an untrusted
source cannot run code when it is opened. The model is then rebuilt from the
saved hyperparameters and its weights loaded into it.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from seq_unet import __version__
from seq_unet.errors import InputError
from seq_unet.io.atomic import atomic_path, ensure_free_space
from seq_unet.lit import SeqUNetModule

log = logging.getLogger(__name__)

KEY = "seq_unet"

# Settings that checkpoints written before they existed lack, at the values those runs had (each
# setting's value before it became one): such a checkpoint is read as if it held them. These record
# the past, not the configuration's current values (conf/), which may differ.
EARLIER_SETTINGS = {"warmup_start_factor": 0.01, "min_lr_ratio": 0.01}
EARLIER_MODEL_OPTIONS = {"head": "linear", "position_scale": None, "coarse_head": False, "motif_channels": 0,
                         "motif_kernel": 15, "motif_init": []}


def make_provenance(config: dict, manifest: dict, dataset_md5: str) -> dict:
    """The record stored in every checkpoint of a training run (plain values only)."""
    return {
        "version": __version__,
        "config": config,
        "dataset_md5": dataset_md5,
        "genome_md5": manifest.get("genome_md5"),
        "track_md5": dict(manifest.get("track_md5", {})),
        "tracks": list(manifest["tracks"]),
        "window_length": int(manifest["window_length"]),
        "target_resolution": int(manifest["target_resolution"]),
    }


class ProvenanceRecorder(pl.Callback):
    """Writes a training run's provenance (:func:`make_provenance`) into every checkpoint it saves."""

    def __init__(self, provenance: dict):
        self.provenance = provenance

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[KEY] = self.provenance


def load_contents(path: str | os.PathLike):
    """What a checkpoint file holds, onto the CPU, unpickling tensors and plain values only.

    Every checkpoint seq-unet reads is read here; :func:`read_checkpoint` adds clear errors.
    """
    return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint's contents, unpickled with ``weights_only=True``, with a clear error for a bad file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint {path} does not exist; train a model first (`seq-unet train`)")
    if path.is_dir():
        raise InputError(f"checkpoint {path} is a folder, not a checkpoint file")
    try:
        ckpt = load_contents(path)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().split(". Please use")[0].splitlines()[0]
        if "Unsupported global" in text:
            raise InputError(
                f"checkpoint {path} holds Python objects other than weights and settings ({detail}); loading "
                "them could run arbitrary code, so seq-unet refuses to (checkpoints are loaded with "
                "weights_only=True)"
            ) from None
        raise InputError(f"checkpoint {path} is damaged or not a PyTorch checkpoint ({detail})") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ValueError... for damaged files
        raise InputError(f"checkpoint {path} is damaged or not a PyTorch checkpoint (truncated or overwritten?): "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise InputError(f"checkpoint {path} is not a seq-unet checkpoint (no model weights and settings; "
                         f"found {keys})")
    return ckpt


def saved_settings(hparams: dict) -> dict:
    """A checkpoint's hyperparameters, with the settings it predates at the values its run had."""
    hp = {**EARLIER_SETTINGS, **hparams}
    if isinstance(hp.get("model"), dict):
        hp["model"] = {**EARLIER_MODEL_OPTIONS, **hp["model"]}
    return hp


def load_module(path: str | os.PathLike, device: torch.device | str = "cpu", ckpt: dict | None = None):
    """Rebuild the trained :class:`~seq_unet.lit.SeqUNetModule` of a checkpoint, in eval mode."""
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    made_by = (ckpt.get(KEY) or {}).get("version", "an unknown version")
    try:
        module = SeqUNetModule(**saved_settings(dict(ckpt["hyper_parameters"])))
        module.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise InputError(f"checkpoint {path} was written by seq-unet {made_by} and does not fit this version "
                         f"({__version__}): {str(exc).splitlines()[0]}") from None
    return module.to(device).eval()


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split("+")[0].split(".")[:2])


def mismatches(ckpt: dict, *, window_length: int | None = None, tracks: list[str] | None = None,
               genome_md5: str | None = None, track_md5: dict[str, str] | None = None) -> list[str]:
    """How the checkpoint differs from what a prediction asks for; empty when it fits.

    Args:
        ckpt: the checkpoint's contents (:func:`read_checkpoint`).
        window_length: the window length asked for (None: not checked).
        tracks: the track names the configuration expects (None: not checked).
        genome_md5: checksum of the prepared genome being predicted, compared with
            the training genome's (None: not checked, e.g. another species).
        track_md5: checksums of the configured track files (None: not checked).
    """
    hp = dict(ckpt["hyper_parameters"])
    prov = ckpt.get(KEY) or {}  # absent from hand-made checkpoints: only the settings can be compared
    out = []
    if prov and _minor(str(prov.get("version", ""))) != _minor(__version__):
        out.append(f"it was written by seq-unet {prov.get('version')}, this is {__version__}")
    trained_length = int(hp.get("window_length", prov.get("window_length", 0)))
    if window_length is not None and int(window_length) != trained_length:
        out.append(f"it was trained on {trained_length}-bp windows, the prediction asks for {int(window_length)} bp")
    trained_tracks = list(hp.get("tracks", []))
    if tracks is not None and sorted(tracks) != sorted(trained_tracks):
        out.append(f"it predicts tracks {trained_tracks}, the configuration names {list(tracks)}")
    if genome_md5 is not None and prov.get("genome_md5") and genome_md5 != prov["genome_md5"]:
        out.append(f"it was trained on another genome (MD5 {prov['genome_md5']}, this genome {genome_md5})")
    if track_md5 is not None and prov.get("track_md5"):
        changed = sorted(t for t, m in track_md5.items() if t in prov["track_md5"] and m != prov["track_md5"][t])
        if changed:
            out.append(f"the track files of {changed} changed since it was trained (MD5 differs)")
    return out


def _tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


class AtomicCheckpointIO(TorchCheckpointIO):
    """A Lightning ``CheckpointIO`` that writes each checkpoint beside its final name and renames it.

    Lightning's own writer stages the file in the system temporary folder and
    moves it, which is a copy into the final name when that folder is on another
    file system (usual on clusters); a job killed during the copy leaves a
    truncated checkpoint under the final name. Free space is checked first.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ensure_free_space(path.parent, int(_tensor_bytes(checkpoint) * 1.1) + (1 << 20), path)
        with atomic_path(path) as tmp:
            try:
                torch.save(checkpoint, tmp)
            except RuntimeError as exc:  # torch reports a failed write (full disk, quota) this way
                raise InputError(f"cannot write checkpoint {path}: {exc}; nothing was left under that "
                                 "name") from exc


def atomic_checkpoint_io() -> AtomicCheckpointIO:
    """The checkpoint writer of training runs (:class:`AtomicCheckpointIO`)."""
    return AtomicCheckpointIO()

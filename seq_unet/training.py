"""Training the U-Net (``seq-unet train``): the Lightning trainer, its callbacks, and resuming.

An interrupted run resumes from its ``last.ckpt`` when that checkpoint was
written by this very run (same data and hyperparameters); one left by another
run is moved aside. The logged metrics of the epochs the checkpoint completed
are kept, so that a resumed run ends with one ``metrics.csv``. With DDP every
process runs :func:`train`; rank 0 alone changes files before training.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from seq_unet.checkpoint import (
    EARLIER_SETTINGS,
    ProvenanceRecorder,
    atomic_checkpoint_io,
    load_contents,
    make_provenance,
)
from seq_unet.config import check_model_length, config_record, hydra_overrides
from seq_unet.data.datamodule import WindowDataModule
from seq_unet.errors import InputError
from seq_unet.io.atomic import atomic_path
from seq_unet.lit import SeqUNetModule
from seq_unet.norm_stats import NormStatistics

log = logging.getLogger("seq_unet")

# what Lightning's DDP launcher sets in the environment of the process that starts the others
_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# the optional loggers' packages (any one of them will do), imported only when chosen
_LOGGER_PACKAGES = {"tensorboard": "tensorboard or tensorboardX", "wandb": "wandb"}


class ResumePoint(NamedTuple):
    """A checkpoint to resume from, and the last epoch it completed (-1: none recorded)."""

    path: str
    epoch: int


def train(cfg: DictConfig) -> float:
    """Train the U-Net on the extracted dataset; keep the best checkpoint on the validation chromosomes.

    Returns the best validation Pearson (mean over tracks), for sweepers.
    """
    pl.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.train.out_dir)
    trainer_kw = trainer_kwargs(cfg)
    dm = _datamodule(cfg, shard=not trainer_kw["use_distributed_sampler"])
    m = dm.manifest
    module = _module(cfg, m)
    provenance = ProvenanceRecorder(make_provenance(config_record(cfg), m, m["dataset_md5"]))
    n_params = sum(p.numel() for p in module.parameters())
    ckpt_dir = out / "checkpoints"
    best_cb, callbacks = _callbacks(cfg, ckpt_dir)
    trainer = _trainer(trainer_kw, [*callbacks, provenance], out, _loggers(cfg, out))
    # With DDP every process runs this step. Only rank 0 changes files before training (its
    # other processes start, or join, only when rank 0 is in trainer.fit); the others read the
    # same last.ckpt and so resume, or not, as rank 0 does.
    rank = _rank_before_fit(trainer)
    if rank:
        log.setLevel(logging.WARNING)  # rank 0 reports
    log.info("SeqUNet: %d parameters, channels %s, receptive field %d bp, window %d bp",
             n_params, module.net.channels, module.net.receptive_field, m["window_length"])
    resume = resume_point(ckpt_dir / "last.ckpt", dict(module.hparams), move_stale=rank == 0) \
        if cfg.train.resume else None
    metrics_csv = out / "logs" / "metrics.csv"
    if resume and rank == 0:
        keep_metrics_before(resume.epoch, metrics_csv)
    t0 = time.time()
    with _distributed_run(), warnings.catch_warnings():
        # the genome-wide validation score (GenomeValidation) is computed by rank 0 alone and logged as a plain
        # value; the window-level metrics are logged as torchmetrics objects, which Lightning does not warn about
        warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('val/.*sync_dist=True")
        trainer.fit(module, datamodule=dm, ckpt_path=resume.path if resume else None, weights_only=True)
    if trainer.is_global_zero:
        merge_resumed_metrics(metrics_csv)
    seconds = time.time() - t0
    best = float(best_cb.best_model_score) if best_cb.best_model_score is not None else float("nan")
    if trainer.is_global_zero:
        _write_results(out, trainer, best_cb, best, seconds,
                       {"parameters": n_params, "receptive_field_bp": module.net.receptive_field})
    return best


def trainer_kwargs(cfg: DictConfig) -> dict:
    """``pytorch_lightning.Trainer`` arguments from ``cfg.trainer``, with this project's defaults."""
    kw = OmegaConf.to_container(cfg.trainer, resolve=True)
    if kw.get("precision") is None:
        gpu = kw.get("accelerator") in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        kw["precision"] = "bf16-mixed" if gpu else "32-true"
    # distributed runs: the data module shares the windows among the processes itself, each
    # window once per epoch (seq_unet.data.datamodule); `true` leaves it to Lightning, whose
    # DistributedSampler repeats a few windows to give every process as many
    kw.setdefault("use_distributed_sampler", False)
    if "spawn" in str(kw.get("strategy", "")):
        # spawned processes get a pickled copy of the trainer and its callbacks: what they record (the best
        # checkpoint's score) would not come back to this process, which writes the run's summary
        raise InputError(f"trainer.strategy={kw['strategy']} is not supported; use trainer=ddp (Lightning starts "
                         "the other processes by running the same seq-unet command again)")
    return kw


def _datamodule(cfg: DictConfig, shard: bool) -> WindowDataModule:
    t = cfg.train
    return WindowDataModule(cfg.paths.dataset, batch_size=t.batch_size, num_workers=t.num_workers,
                            reverse_complement=t.reverse_complement, random_shift=t.random_shift, seed=cfg.seed,
                            shard=shard, position_scale=cfg.model.position_scale)


def _module(cfg: DictConfig, m: dict) -> SeqUNetModule:
    """A new model for the dataset of manifest ``m`` (its tracks, windows and target standardisation)."""
    check_model_length(cfg, int(m["window_length"]))
    if m["splits"]["train"]["windows"] == 0 or m["splits"]["val"]["windows"] == 0:
        raise InputError(f"dataset {cfg.paths.dataset} has no usable train or validation windows: {m['splits']}")
    return SeqUNetModule(
        tracks=m["tracks"], window_length=m["window_length"], target_resolution=m["target_resolution"],
        target_mean=[m["target_mean"][t] for t in m["tracks"]], target_std=[m["target_std"][t] for t in m["tracks"]],
        model=OmegaConf.to_container(cfg.model, resolve=True), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
        warmup_fraction=cfg.train.warmup_fraction, loss=cfg.train.loss, dataset_md5=m["dataset_md5"],
        warmup_start_factor=cfg.train.warmup_start_factor, min_lr_ratio=cfg.train.min_lr_ratio,
    )


def _callbacks(cfg: DictConfig, ckpt_dir: Path) -> tuple[ModelCheckpoint, list[pl.Callback]]:
    """The callback keeping the best checkpoints, and every callback of the run (it among them).

    Their settings are ``cfg.callbacks`` (conf/callbacks/), whose early stopping and
    EMA follow ``train.early_stopping_patience`` and ``train.ema_decay`` unless set there.
    """
    monitor = _selection_metric(cfg)
    cb = cfg.callbacks
    best_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best-epoch{epoch:03d}", monitor=monitor, mode="max",
                              save_top_k=cb.checkpoint.top_k, auto_insert_metric_name=False)
    # last.ckpt after every epoch, improved or not (Lightning's save_last writes it only in epochs
    # that save a new best), so an interrupted run resumes from its latest epoch
    last_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, monitor=None,
                              enable_version_counter=False)
    callbacks = [best_cb, last_cb]
    interval = cb.lr_monitor.logging_interval
    if interval is not None:
        if interval not in ("epoch", "step"):
            raise InputError(f"callbacks.lr_monitor.logging_interval must be epoch, step or null, not {interval!r}")
        callbacks.append(LearningRateMonitor(logging_interval=interval))
    if monitor == "val/genome_pearson":
        from seq_unet.evaluate.genome_val import GenomeValidation

        # before the checkpoint callbacks, which read the score it logs
        callbacks.insert(0, GenomeValidation(cfg.paths.dataset, batch_size=cfg.predict.batch_size,
                                             blend=cfg.predict.blend))
    if cb.ema.decay:
        from pytorch_lightning.callbacks import EMAWeightAveraging

        # validation, model selection and the saved checkpoints use the averaged weights
        callbacks.append(EMAWeightAveraging(
            decay=cb.ema.decay, update_every_n_steps=cb.ema.update_every_n_steps,
            update_starting_at_step=cb.ema.update_starting_at_step,
            update_starting_at_epoch=cb.ema.update_starting_at_epoch))
    # after the weight averaging, whose weights validation then uses
    callbacks.append(NormStatistics(cfg.paths.dataset, windows=cb.norm_stats.windows, batch_size=cfg.train.batch_size,
                                    position_scale=cfg.model.position_scale))
    if cb.early_stopping.patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=cb.early_stopping.patience,
                                       min_delta=cb.early_stopping.min_delta))
    return best_cb, callbacks


def _selection_metric(cfg: DictConfig) -> str:
    """The validation score that picks the best checkpoint and stops training early (``train.select_on``)."""
    choice = cfg.train.select_on
    if choice not in ("genome", "windows"):
        raise InputError(f"train.select_on must be 'genome' (the validation chromosomes predicted as `seq-unet "
                         f"predict` does) or 'windows' (the window-level score), not {choice!r}")
    return "val/genome_pearson" if choice == "genome" else "val/pearson"


def _loggers(cfg: DictConfig, out: Path) -> list[Logger]:
    """The run's loggers (``cfg.logger``, conf/logger/): the CSV table ``<out>/logs/metrics.csv`` first,
    then TensorBoard (``<out>/tensorboard``) or Weights & Biases (``<out>/wandb``) if chosen."""
    loggers: list[Logger] = [CSVLogger(str(out), name="", version="logs")]
    kind = cfg.logger.kind
    if kind == "csv":
        return loggers
    if kind not in _LOGGER_PACKAGES:
        raise InputError(f"logger.kind must be csv, tensorboard or wandb, not {kind!r}")
    package = _LOGGER_PACKAGES[kind]
    if not any(importlib.util.find_spec(name) is not None for name in package.split(" or ")):
        pip = package.split(" or ")[0]
        raise InputError(f"logger={kind} needs the {pip} package, which is not installed: pip install {pip}")
    if kind == "tensorboard":
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(out), name="", version="tensorboard", default_hp_metric=False))
    else:
        from pytorch_lightning.loggers import WandbLogger

        loggers.append(WandbLogger(save_dir=str(out), project=cfg.logger.project, offline=cfg.logger.offline))
    return loggers


def _trainer(trainer_kw: dict, callbacks: list[pl.Callback], out: Path, loggers: list[Logger]) -> pl.Trainer:
    try:
        return pl.Trainer(**trainer_kw, callbacks=callbacks, default_root_dir=str(out),
                          logger=loggers[0] if len(loggers) == 1 else loggers, plugins=[atomic_checkpoint_io()])
    except (TypeError, ValueError, MisconfigurationException) as exc:  # Lightning checks the trainer.* keys
        raise InputError(f"trainer config (pytorch_lightning.Trainer arguments): {exc}") from None


def _rank_before_fit(trainer: pl.Trainer) -> int:
    """The global rank this process gets in ``trainer.fit`` (``trainer.global_rank`` is set only there).

    Lightning's formula (DDPStrategy.set_world_ranks): node rank x processes per node + local rank,
    read from the cluster environment (LOCAL_RANK and NODE_RANK set by the launcher, SLURM, torchrun...).
    """
    from pytorch_lightning.strategies import ParallelStrategy

    s = trainer.strategy
    if not isinstance(s, ParallelStrategy) or s.cluster_environment is None:
        return 0
    return s.node_rank * s.num_processes + s.local_rank


def _write_results(out: Path, trainer: pl.Trainer, best_cb: ModelCheckpoint, best: float, seconds: float,
                   model: dict) -> None:
    """best.ckpt (a copy of the best checkpoint) and train_summary.json; ``model``: its size and reach."""
    if not best_cb.best_model_path:
        raise InputError("training finished without a validation score; is the validation split empty?")
    with atomic_path(out / "best.ckpt") as tmp:
        shutil.copyfile(best_cb.best_model_path, tmp)
    summary = {"best_val_pearson": best, "best_checkpoint": str(out / "best.ckpt"),
               "epochs": trainer.current_epoch, "global_step": trainer.global_step, "train_seconds": seconds,
               **model, "overrides": hydra_overrides(), "metrics_csv": str(out / "logs" / "metrics.csv")}
    with atomic_path(out / "train_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    log.info("best validation Pearson %.4f -> %s (%.0f s)", best, out / "best.ckpt", seconds)


@contextlib.contextmanager
def _distributed_run():
    """Around ``trainer.fit``: afterwards, no process group and the launch environment as before.

    A multirun trains its jobs one after another in one process; left as DDP
    leaves them (LOCAL_RANK set, the group of the finished job still open) the
    next job would take itself for a process started by someone else and wait
    for processes that are gone.
    """
    import torch.distributed as dist

    before = {k: os.environ.get(k) for k in _LAUNCH_ENV}
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resume_point(last: Path, hparams: dict, move_stale: bool = True) -> ResumePoint | None:
    """``last`` and its completed epoch if it continues this very run (same data and hyperparameters), else None.

    A checkpoint left by a run with other data or settings is moved out of the
    way (renamed with a ``.stale`` suffix) so that it cannot be mistaken for this run's;
    with ``move_stale=False`` (the other processes of a distributed run) it is left in place.
    """
    if not last.exists():
        return None
    try:
        ckpt = load_contents(last)
        saved = ckpt.get("hyper_parameters", {})
    except Exception as exc:  # unreadable: do not resume from it
        log.warning("cannot read %s (%s); training from scratch", last, exc)
        saved = None
    if saved is not None and {**_later_defaults(saved, hparams), **saved} == hparams:
        log.info("resuming from %s", last)
        return ResumePoint(str(last), int(ckpt.get("epoch", -1)))
    if not move_stale:
        return None
    stale = last.parent.with_name(last.parent.name + ".stale")
    shutil.rmtree(stale, ignore_errors=True)
    last.parent.rename(stale)
    log.warning("%s belongs to a run with other data or settings; moved to %s, training from scratch", last, stale)
    return None


def _later_defaults(saved: dict, hparams: dict) -> dict:
    """Settings of ``hparams`` that a checkpoint written before they existed lacks, at the values its run had
    (:data:`~seq_unet.checkpoint.EARLIER_SETTINGS`, e.g. ``warmup_start_factor``): such a checkpoint continues
    a run at those values."""
    return {k: v for k, v in EARLIER_SETTINGS.items() if k in hparams and k not in saved}


def keep_metrics_before(done: int, metrics_csv: Path) -> None:
    """Before resuming: set aside the logged rows of epochs 0..``done``, those the checkpoint completed.

    Lightning's CSV logger starts a fresh ``metrics.csv``; rows of an epoch cut
    short by the interruption are dropped (that epoch is trained again).
    """
    import pandas as pd

    earlier = metrics_csv.with_name("metrics.before_resume.csv")
    # the log is appended as training goes: a kill can cut its last line short, so unreadable lines
    # and rows without a step are dropped
    parts = [pd.read_csv(p, on_bad_lines="skip") for p in (earlier, metrics_csv) if p.exists() and p.stat().st_size]
    if not parts:
        return
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.dropna(subset=[c for c in ("epoch", "step") if c in rows])
    rows = rows[rows["epoch"] <= done] if "epoch" in rows else rows
    with atomic_path(earlier) as tmp:
        rows.to_csv(tmp, index=False)
    log.info("kept %d logged rows of epochs 0..%d in %s", len(rows), done, earlier)


def merge_resumed_metrics(metrics_csv: Path) -> None:
    """After a resumed run: one ``metrics.csv`` with the rows from before and after the resumption."""
    import pandas as pd

    earlier = metrics_csv.with_name("metrics.before_resume.csv")
    if not earlier.exists():
        return
    parts = [pd.read_csv(p) for p in (earlier, metrics_csv) if p.exists() and p.stat().st_size]
    rows = pd.concat(parts, ignore_index=True)
    with atomic_path(metrics_csv) as tmp:
        rows[sorted(rows.columns)].to_csv(tmp, index=False)
    earlier.unlink()

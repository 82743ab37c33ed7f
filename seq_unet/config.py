"""The configuration's schema: Hydra structured configs for every section of ``conf/``.

``conf/config.yaml`` starts its defaults list with ``seq_unet_schema``, so every
YAML file and command-line override is merged into these dataclasses: a
misspelt key (``data.val_chrom``, ``model.dept=4``) or a value of the wrong type
(``data.window_length=abc``) stops the command with Hydra's message naming the
key, instead of being silently ignored. ``trainer`` is left open: its keys are
``pytorch_lightning.Trainer`` arguments, which Lightning itself checks.

The dataclasses hold the keys and their types, not their values: every value
lives in the YAML files of ``conf/`` alone. A key that ``conf/`` sets is
``MISSING`` here, so a YAML file that leaves it out is an error naming the key
(:func:`missing_values`), never a silent fallback. Only keys that a config may
leave unset are ``Optional`` with the default ``None`` (``data.blacklist``,
``predict.crop``, ...).

Values are plain data: no key is ever evaluated as code (no ``_target_``
instantiation, no ``eval``). One value may follow another through OmegaConf
interpolation, e.g. ``evaluate.baseline_bin: ${data.target_resolution}``, and
the one resolver registered here, ``${seq_unet.times:a,b}`` (the product of
whole numbers), scales one: the evaluation's coarser resolution is
``${seq_unet.times:${data.target_resolution},10}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from seq_unet.errors import InputError

NAME = "seq_unet_schema"
TIMES = "seq_unet.times"


def _times(*factors: int) -> int:
    """``${seq_unet.times:a,b,...}``: the product of whole numbers."""
    return math.prod(int(f) for f in factors)


def register_resolvers() -> None:
    """Make ``${seq_unet.times:...}`` known to OmegaConf (done on import: every process that resolves the
    configuration, Snakemake's, a step's or a launcher's job, has imported this module)."""
    if not OmegaConf.has_resolver(TIMES):
        OmegaConf.register_new_resolver(TIMES, _times)


register_resolvers()


@dataclass
class DataConfig:
    name: str = MISSING
    fasta: str = MISSING
    tracks: Dict[str, str] = MISSING
    ucsc_assembly: Optional[str] = None  # a data config may leave it out: assembly hub with a .2bit
    blacklist: Optional[str] = None
    val_chroms: List[str] = MISSING
    test_chroms: List[str] = MISSING
    window_length: int = MISSING
    stride: int = MISSING
    max_shift: int = MISSING
    target_resolution: int = MISSING
    min_valid_fraction: float = MISSING


@dataclass
class KineticConfig:
    bin_size: int = MISSING
    reach: int = MISSING
    fork_speed: float = MISSING
    shared_rates: bool = MISSING
    init_fraction: float = MISSING
    init_spread: float = MISSING
    early_high: bool = MISSING


@dataclass
class ModelConfig:
    head: str = MISSING
    kinetic: KineticConfig = field(default_factory=KineticConfig)
    position_scale: Optional[float] = None
    depth: int = MISSING
    base_channels: int = MISSING
    channel_growth: float = MISSING
    max_channels: int = MISSING
    kernel_size: int = MISSING
    pool: Any = MISSING  # an int, or one int per level
    down: str = MISSING
    up: str = MISSING
    skip: str = MISSING
    skip_project: bool = MISSING
    norm: str = MISSING
    merge_norm: str = MISSING
    padding: str = MISSING
    bottleneck_blocks: int = MISSING
    bottleneck_kernel: int = MISSING
    dilation_growth: int = MISSING
    dropout: float = MISSING
    checkpointing: bool = MISSING
    coarse_head: bool = MISSING
    motif_channels: int = MISSING
    motif_kernel: int = MISSING
    motif_init: List[str] = MISSING


@dataclass
class PathsConfig:
    results: str = MISSING
    fasta: str = MISSING
    chrom_sizes: str = MISSING
    windows: str = MISSING
    dataset: str = MISSING
    ckpt: str = MISSING
    predictions: str = MISSING
    baseline: str = MISSING
    eval: str = MISSING
    browser: str = MISSING


@dataclass
class TrainConfig:
    out_dir: str = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    reverse_complement: bool = MISSING
    random_shift: bool = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    warmup_fraction: float = MISSING
    warmup_start_factor: float = MISSING
    min_lr_ratio: float = MISSING
    loss: str = MISSING
    ema_decay: Optional[float] = None
    early_stopping_patience: int = MISSING
    select_on: str = MISSING
    resume: bool = MISSING


@dataclass
class CheckpointCallbackConfig:
    top_k: int = MISSING  # best-epoch*.ckpt files kept (the best of them becomes best.ckpt)


@dataclass
class EarlyStoppingConfig:
    patience: int = MISSING  # 0: off
    min_delta: float = MISSING


@dataclass
class EMAConfig:
    decay: Optional[float] = MISSING  # null: off
    update_every_n_steps: int = MISSING
    update_starting_at_step: Optional[int] = None
    update_starting_at_epoch: Optional[int] = None


@dataclass
class LRMonitorConfig:
    logging_interval: Optional[str] = MISSING  # epoch | step | null (off)


@dataclass
class NormStatsConfig:
    windows: int = MISSING  # training windows the batch-norm statistics are recomputed from before validation; 0: off


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointCallbackConfig = field(default_factory=CheckpointCallbackConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    lr_monitor: LRMonitorConfig = field(default_factory=LRMonitorConfig)
    norm_stats: NormStatsConfig = field(default_factory=NormStatsConfig)


@dataclass
class LoggerConfig:
    kind: str = MISSING  # csv | tensorboard | wandb: the latter two log beside the CSV table
    project: str = MISSING  # wandb
    offline: bool = MISSING  # wandb: write under the run folder, upload later with `wandb sync`


@dataclass
class PredictConfig:
    ckpt: Any = MISSING  # a checkpoint, or a list of them (a seed ensemble)
    fasta: str = MISSING
    out_dir: str = MISSING
    window_length: Optional[int] = None
    crop: Optional[int] = None
    batch_size: int = MISSING
    precision: float = MISSING
    std_precision: Optional[float] = None
    smooth: Any = MISSING  # "auto" or a number of bases
    reverse_complement: bool = MISSING
    mask_unknown: bool = MISSING
    device: str = MISSING
    devices: int = MISSING
    mc_samples: int = MISSING
    allow_mismatch: bool = MISSING
    rate_precision: float = MISSING
    blend: Any = MISSING  # "auto" or a number of bases


@dataclass
class BrowserConfig:
    hub_email: str = MISSING


@dataclass
class OriginsConfig:
    motif: str = MISSING
    peaks: int = MISSING
    radius: int = MISSING
    separation: int = MISSING


@dataclass
class EvaluateConfig:
    resolutions: List[int] = MISSING
    baseline_bin: int = MISSING
    origins: OriginsConfig = field(default_factory=OriginsConfig)


@dataclass
class SweepConfig:
    dir: Optional[str] = None
    predict: bool = MISSING
    resolution: int = MISSING


@dataclass
class Config:
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    trainer: Dict[str, Any] = MISSING
    seed: int = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    browser: BrowserConfig = field(default_factory=BrowserConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)


def register() -> None:
    """Make the schema known to Hydra (called before every command composes its config)."""
    register_resolvers()
    ConfigStore.instance().store(name=NAME, node=Config)


# per section, the shipped YAML file that sets every one of its keys
SHOWN_IN = {"data": "conf/data/sacCer3.yaml", "model": "conf/model/unet.yaml", "trainer": "conf/trainer/default.yaml",
            "callbacks": "conf/callbacks/default.yaml", "logger": "conf/logger/csv.yaml"}


def missing_values(cfg: Any) -> str | None:
    """What the composed configuration lacks, as an error message naming the keys; None when complete.

    The schema holds no values: a key that no YAML file (nor the command line) sets stays ``???``.
    """
    missing = _missing_keys(OmegaConf.to_container(cfg, resolve=False))  # no interpolation is resolved
    if not missing:
        return None
    shown = sorted({SHOWN_IN.get(k.split(".")[0], "conf/config.yaml") for k in missing})
    files = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"
    where = f"{files} {'shows' if len(shown) == 1 else 'show'} every key"
    if any(k.startswith("data.") for k in missing):
        where = f"data config {OmegaConf.select(cfg, 'data.name', default=None, throw_on_missing=False)!r}; {where}"
    return f"the configuration has no value for {', '.join(missing)} ({where})"


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """The dotted keys of ``node`` (plain containers) whose value is ``???``, sorted."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    out = []
    for key, value in items:
        name = f"{prefix}{key}"
        out += [name] if value == MISSING else _missing_keys(value, f"{name}.")
    return sorted(out)


def check_model_length(cfg: Any, length: int) -> None:
    """Refuse a window length the configured model cannot take (``cfg``: the composed configuration)."""
    from seq_unet.model.heads import check_window

    try:
        check_window(OmegaConf.to_container(cfg.model, resolve=True), length, cfg.data.target_resolution)
    except ValueError as exc:
        raise InputError(f"data.window_length: {exc}") from exc


def config_record(cfg: Any) -> dict:
    """The configuration as plain values, for provenance records (resolved where possible)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # e.g. ${hydra:...} outside a Hydra run
        return OmegaConf.to_container(cfg, resolve=False)


def hydra_overrides() -> list[str]:
    """The command line's overrides of the running Hydra job; empty outside one."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []

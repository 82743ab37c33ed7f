"""The configuration's schema: Hydra structured configs for every section of ``conf/``.

``conf/config.yaml`` starts its defaults list with ``seq_unet_schema``, so every
YAML file and command-line override is merged into these dataclasses: a
misspelt key (``data.val_chrom``, ``model.dept=4``) or a value of the wrong type
(``data.window_length=abc``) stops the command with Hydra's message naming the
key, instead of being silently ignored. ``trainer`` is left open: its keys are
``pytorch_lightning.Trainer`` arguments, which Lightning itself checks.

Values are plain data: no key is ever evaluated as code (no ``_target_``
instantiation, no ``eval``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from seq_unet.errors import InputError

NAME = "seq_unet_schema"


@dataclass
class DataConfig:
    name: str = MISSING
    fasta: str = MISSING
    tracks: Dict[str, str] = MISSING
    ucsc_assembly: Optional[str] = None
    blacklist: Optional[str] = None
    val_chroms: List[str] = MISSING
    test_chroms: List[str] = MISSING
    window_length: int = MISSING
    stride: int = MISSING
    max_shift: int = 0
    target_resolution: int = 1
    min_valid_fraction: float = 0.5


@dataclass
class KineticConfig:
    bin_size: int = 1000
    reach: int = 32000
    fork_speed: float = 2000.0
    shared_rates: bool = False
    init_fraction: float = 0.4
    init_spread: float = 0.15
    early_high: bool = True


@dataclass
class ModelConfig:
    head: str = "linear"
    kinetic: KineticConfig = field(default_factory=KineticConfig)
    position_scale: Optional[float] = None
    depth: int = 5
    base_channels: int = 8
    channel_growth: float = 2.0
    max_channels: int = 256
    kernel_size: int = 9
    pool: Any = 4  # an int, or one int per level
    down: str = "avgpool"
    up: str = "transpose"
    skip: str = "add"
    skip_project: bool = True
    norm: str = "batch"
    merge_norm: str = "after"
    padding: str = "same"
    bottleneck_blocks: int = 6
    bottleneck_kernel: int = 3
    dilation_growth: int = 2
    dropout: float = 0.2
    checkpointing: bool = False
    coarse_head: bool = False


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
    batch_size: int = 8
    num_workers: int = 1
    reverse_complement: bool = True
    random_shift: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    warmup_start_factor: float = 0.01
    min_lr_ratio: float = 0.01
    loss: str = "mse"
    ema_decay: Optional[float] = None
    early_stopping_patience: int = 15
    select_on: str = "genome"
    resume: bool = True


@dataclass
class CheckpointCallbackConfig:
    top_k: int = 1  # best-epoch*.ckpt files kept (the best of them becomes best.ckpt)


@dataclass
class EarlyStoppingConfig:
    patience: int = "${train.early_stopping_patience}"  # 0: off
    min_delta: float = 0.0


@dataclass
class EMAConfig:
    decay: Optional[float] = "${train.ema_decay}"  # null: off
    update_every_n_steps: int = 1
    update_starting_at_step: Optional[int] = None
    update_starting_at_epoch: Optional[int] = None


@dataclass
class LRMonitorConfig:
    logging_interval: Optional[str] = "epoch"  # epoch | step | null (off)


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointCallbackConfig = field(default_factory=CheckpointCallbackConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    lr_monitor: LRMonitorConfig = field(default_factory=LRMonitorConfig)


@dataclass
class LoggerConfig:
    kind: str = "csv"  # csv | tensorboard | wandb: the latter two log beside the CSV table
    project: str = "seq-unet"  # wandb
    offline: bool = True  # wandb: write under the run folder, upload later with `wandb sync`


@dataclass
class PredictConfig:
    ckpt: Any = MISSING  # a checkpoint, or a list of them (a seed ensemble)
    fasta: str = MISSING
    out_dir: str = MISSING
    window_length: Optional[int] = None
    crop: Optional[int] = None
    batch_size: int = 8
    precision: float = 0.005
    std_precision: Optional[float] = None
    smooth: Any = "auto"  # "auto" or a number of bases
    reverse_complement: bool = True
    mask_unknown: bool = False
    device: str = "auto"
    devices: int = 1
    mc_samples: int = 0
    allow_mismatch: bool = False
    rate_precision: float = 0.001
    blend: Any = "auto"  # "auto" or a number of bases


@dataclass
class BrowserConfig:
    hub_email: str = ""


@dataclass
class OriginsConfig:
    motif: str = "WTTTAYRTTTW"
    peaks: int = 300
    radius: int = 200
    separation: int = 2000


@dataclass
class EvaluateConfig:
    resolutions: List[int] = field(default_factory=lambda: [1000, 10000])
    baseline_bin: int = 1000
    origins: OriginsConfig = field(default_factory=OriginsConfig)


@dataclass
class SweepConfig:
    dir: Optional[str] = None
    predict: bool = True
    resolution: int = 1000


@dataclass
class Config:
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    trainer: Dict[str, Any] = MISSING
    seed: int = 0
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
    ConfigStore.instance().store(name=NAME, node=Config)


def check_model_length(cfg: Any, length: int) -> None:
    """Refuse a window length the configured model cannot take (``cfg``: the composed configuration)."""
    from seq_unet.model.heads import check_window

    try:
        check_window(OmegaConf.to_container(cfg.model, resolve=True), length, int(cfg.data.target_resolution))
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

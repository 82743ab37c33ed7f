# Helpers shared by the rules: the data config, the Hydra arguments and the outputs.

import os
import shlex

from omegaconf import OmegaConf
from snakemake.utils import validate


validate(config, "../schemas/config.schema.yaml")

DATA = config["data"]
RESULTS = f"results/{DATA}"
CONF_DIRS = [d for d in (config.get("conf_dir") or "", os.path.join(workflow.basedir, "conf")) if d]


def _data_config_path():
    for d in CONF_DIRS:
        path = os.path.join(d, "data", f"{DATA}.yaml")
        if os.path.exists(path):
            return path
    raise WorkflowError(
        f"no data config {DATA!r}: looked for data/{DATA}.yaml in {CONF_DIRS}. "
        "Create it (see conf/data/sacCer3.yaml) or pick another with --config data=NAME."
    )


def _compose(overrides):
    """The configuration every step composes (Hydra's compose API over conf/ and conf_dir)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from seq_unet.cli.main import config_dir
    from seq_unet.config import register

    register()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise WorkflowError(f"the configuration does not compose ({' '.join(overrides)}): {exc}")


_args = [f"data={DATA}"]
if config.get("conf_dir"):
    _args.append(f"hydra.searchpath=[file://{os.path.abspath(config['conf_dir'])}]")
_data_config_path()  # a missing data config is named before Hydra looks for it
CFG = _compose(_args + shlex.split(config.get("overrides") or ""))
for _key in ("name", "fasta", "tracks", "val_chroms", "test_chroms"):
    if OmegaConf.is_missing(CFG.data, _key):
        raise WorkflowError(f"data config {_data_config_path()} lacks the key {_key!r}")
DATA_CFG = OmegaConf.to_container(CFG.data, resolve=True)
if DATA_CFG["name"] != DATA:
    raise WorkflowError(f"{_data_config_path()} has name {DATA_CFG['name']!r}; it must equal its file name {DATA!r}")

TRACKS = list(DATA_CFG["tracks"])
TRACK_FILES = [str(p) for p in DATA_CFG["tracks"].values()]
BLACKLIST = [DATA_CFG["blacklist"]] if DATA_CFG.get("blacklist") else []

HYDRA = " ".join(shlex.quote(a) for a in _args)
if config.get("overrides"):
    HYDRA += " " + config["overrides"]

MC_SAMPLES = int(config.get("mc_samples", 0))
ENSEMBLE = int(config.get("ensemble", 1))
KINETIC = CFG.model.head == "kinetic"
# every prediction: the tracks, their initiation rates (kinetic head), their uncertainty (Monte Carlo
# dropout or an ensemble)
PREDICTED = (TRACKS + ([f"{t}.initiation" for t in TRACKS] if KINETIC else [])
             + ([f"{t}.std" for t in TRACKS] if MC_SAMPLES > 0 or ENSEMBLE > 1 else []))
# the trained model: one checkpoint, or one per member of a seed ensemble (seeds 0..K-1)
CHECKPOINTS = ([f"{RESULTS}/train/best.ckpt"] if ENSEMBLE == 1
               else [f"{RESULTS}/train/member{m}/best.ckpt" for m in range(ENSEMBLE)])

BASELINES = ["gc", "kmer_ridge"]

# With --use-conda every step runs in a conda environment that installs this checkout:
# workflows/envs/seq-unet.yaml names it ${SEQ_UNET_ROOT}, which pip expands.
os.environ.update(SEQ_UNET_ROOT=workflow.basedir)


def step_resource(step, key):
    """threads, mem_mb, runtime or gpu of a step (workflows/config.yaml, key resources)."""
    return config["resources"][step][key]


def per_attempt(step, key):
    """A resource that grows with each try of a job: the configured value times the attempt."""
    base = step_resource(step, key)
    return lambda wildcards, attempt: base * attempt


def final_outputs():
    return [
        f"{RESULTS}/eval/metrics.tsv",
        f"{RESULTS}/browser/igv_session.xml",
        f"{RESULTS}/browser/hub",
    ]

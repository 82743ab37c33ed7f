# Helpers shared by the rules: the data config, the Hydra arguments and the outputs.

import os
import shlex

import yaml
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


with open(_data_config_path()) as _fh:
    DATA_CFG = yaml.safe_load(_fh)

for _key in ("name", "fasta", "tracks", "val_chroms", "test_chroms"):
    if _key not in DATA_CFG:
        raise WorkflowError(f"data config {_data_config_path()} lacks the key {_key!r}")
if DATA_CFG["name"] != DATA:
    raise WorkflowError(f"{_data_config_path()} has name {DATA_CFG['name']!r}; it must equal its file name {DATA!r}")

TRACKS = list(DATA_CFG["tracks"])
TRACK_FILES = [str(p) for p in DATA_CFG["tracks"].values()]
BLACKLIST = [DATA_CFG["blacklist"]] if DATA_CFG.get("blacklist") else []

_args = [f"data={DATA}"]
if config.get("conf_dir"):
    _args.append(f"hydra.searchpath=[file://{os.path.abspath(config['conf_dir'])}]")
HYDRA = " ".join(shlex.quote(a) for a in _args)
if config.get("overrides"):
    HYDRA += " " + config["overrides"]

MC_SAMPLES = int(config.get("mc_samples", 0))
PREDICTED = TRACKS + ([f"{t}.std" for t in TRACKS] if MC_SAMPLES > 0 else [])

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

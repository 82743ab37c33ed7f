# Helpers shared by the rules: the data config, the Hydra arguments and the outputs.

import os
import shlex

from omegaconf import OmegaConf
from snakemake.utils import validate

from seq_unet.config import missing_values
from seq_unet.data.store import DATASET_FORMAT
from seq_unet.io.names import BASELINES as NAMED_BASELINES
from seq_unet.io.names import initiation_name, std_name


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
for _key in CFG.data:
    if OmegaConf.is_missing(CFG.data, _key):
        raise WorkflowError(f"data config {_data_config_path()} lacks the key {_key!r}")
if _missing := missing_values(CFG):
    raise WorkflowError(_missing)
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
PREDICTED = (TRACKS + ([initiation_name(t) for t in TRACKS] if KINETIC else [])
             + ([std_name(t) for t in TRACKS] if MC_SAMPLES > 0 or ENSEMBLE > 1 else []))
# the trained model: one checkpoint, or one per member of a seed ensemble (seeds 0..K-1)
CHECKPOINTS = ([f"{RESULTS}/train/best.ckpt"] if ENSEMBLE == 1
               else [f"{RESULTS}/train/member{m}/best.ckpt" for m in range(ENSEMBLE)])

BASELINES = list(NAMED_BASELINES)

# With --use-conda every step runs in a conda environment that installs this checkout:
# workflows/envs/seq-unet.yaml names it ${SEQ_UNET_ROOT}, which pip expands.
os.environ.update(SEQ_UNET_ROOT=workflow.basedir)


def final_outputs():
    return [
        f"{RESULTS}/eval/metrics.tsv",
        f"{RESULTS}/browser/igv_session.xml",
        f"{RESULTS}/browser/hub",
    ]


# Rerun triggers. Snakemake reruns a job when its params change (besides mtime, input set, code
# and software env). Each rule's `params.digest` is a hash of exactly the configuration its
# step reads (the resolved values, after every YAML file and override) and the package version;
# so editing a value, in a YAML file or in `overrides`, reruns the steps that read it and those
# downstream of them, and nothing else. The command line itself (`params.hydra`: the Hydra
# arguments and the rule's paths) is a function of the rule's output, which Snakemake keeps out
# of the params trigger ("derived" params); an override reaches the trigger only through the
# digests of the steps that read its key.
# What each `seq-unet <step>` reads (seq_unet/cli/steps.py), besides the paths (paths.*,
# predict.ckpt/fasta/out_dir), which the rules pass from their input and output:
STEP_CONFIG = {
    # decompress + index data.fasta; check the tracks' chromosome names against it
    "genome": ["data.fasta", "data.tracks"],
    # tiling and masks; and a check that the U-Net can take data.window_length (model geometry:
    # a genuine dependency, the step refuses a window the model cannot take)
    "windows": ["data.tracks", "data.blacklist", "data.val_chroms", "data.test_chroms", "data.window_length",
                "data.stride", "data.target_resolution", "data.min_valid_fraction", "data.max_shift",
                "model.head", "model.kinetic.bin_size", "model.kinetic.reach", "model.depth", "model.pool",
                "model.kernel_size", "model.bottleneck_blocks", "model.bottleneck_kernel",
                "model.dilation_growth", "model.up", "model.padding"],
    # the manifest records the whole data config
    "extract": ["data"],
    # the network, the optimiser, Lightning, its callbacks and loggers; genome-wide validation predicts
    # as `predict` does (predict.batch_size, predict.blend); the window check reads data.target_resolution
    "train": ["seed", "model", "train", "trainer", "callbacks", "logger", "data.target_resolution",
              "predict.batch_size", "predict.blend"],
    # the checkpoint holds the model; the checkpoint check reads the tracks and window length
    "predict": ["seed", "predict", "data.tracks", "data.window_length"],
    # evaluate.baseline_bin and evaluate.resolutions follow data.target_resolution by interpolation
    # (conf/config.yaml); the digests hash resolved values, so a new target resolution reruns both steps
    "baseline": ["data.tracks", "data.val_chroms", "data.test_chroms", "evaluate.baseline_bin"],
    "evaluate": ["data.tracks", "data.val_chroms", "data.test_chroms", "data.blacklist", "evaluate.resolutions",
                 "evaluate.origins"],
    # which prediction files exist (e.g. the kinetic head's initiation rates) comes with the input
    "browser": ["data.name", "data.tracks", "data.ucsc_assembly", "browser.hub_email"],
}
# set by the rules themselves (from their input, output, threads, wildcards or the workflow config)
SET_BY_RULES = ["train.out_dir", "train.num_workers", "predict.ckpt", "predict.fasta", "predict.out_dir",
                "predict.mc_samples"]


def _resolved_config():
    cfg = OmegaConf.create(OmegaConf.to_container(CFG, resolve=False))
    for key in SET_BY_RULES:  # e.g. train.out_dir is Hydra's run folder, known only in a run
        OmegaConf.update(cfg, key, None, force_add=True)
    return OmegaConf.to_container(cfg, resolve=True)


RESOLVED = _resolved_config()


def _version():
    from seq_unet import __version__

    return __version__


VERSION = _version()


def config_values(step, leave_out=()):
    """The configuration values ``step`` reads: {dotted key: resolved value}."""
    values = {}
    for key in STEP_CONFIG[step]:
        if key in leave_out:
            continue
        node = RESOLVED
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        values[key] = node
    return values


def config_digest(step, leave_out=()):
    """`seq-unet <version> <sha256>` of the configuration values ``step`` reads."""
    import hashlib
    import json

    text = json.dumps(config_values(step, leave_out), sort_keys=True, default=str)
    return f"seq-unet {VERSION} {hashlib.sha256(text.encode()).hexdigest()}"


def hydra_args(paths=None):
    """params.hydra: the Hydra arguments of every step plus ``key=path`` overrides, each path picked
    from the job's input or output (a derived param, so it is no rerun trigger of its own).

    ``paths``: {Hydra key: (``"input"`` or ``"output"``, the file's name or index, ``folder``)};
    ``folder`` true (or a number of levels) gives the key the folder holding that file.
    """

    def args(wildcards, input, output):
        own = []
        for key, (side, item, folder) in (paths or {}).items():
            files = input if side == "input" else output
            path = files[item] if isinstance(item, int) else getattr(files, item)
            if not isinstance(path, str):  # a named list of files: the first
                path = path[0]
            for _ in range(int(folder)):
                path = os.path.dirname(path)
            own.append(f"{key}={path}")
        return " ".join([HYDRA] + [shlex.quote(a) for a in own])

    return args


def from_input(item, folder=False):
    return ("input", item, folder)


def from_output(item, folder=False):
    return ("output", item, folder)


def caption(name):
    """A report caption, workflows/report/<name>.rst."""
    return os.path.join(workflow.basedir, "workflows", "report", f"{name}.rst")


def benchmarks():
    """Each step's benchmark file (wall time, peak memory), flagged for `snakemake --report`."""
    steps = ["genome", "windows", "extract"]
    steps += ["train"] if ENSEMBLE == 1 else [f"train_member{m}" for m in range(ENSEMBLE)]
    steps += ["predict", "baseline", "evaluate", "browser"]
    labels = [{"step": step} for step in steps]
    return [report(f"{RESULTS}/benchmarks/{label['step']}.tsv", caption=caption("benchmark"), category="Resources",
                   labels=label) for label in labels]

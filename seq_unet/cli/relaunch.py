"""The command line that starts the other processes of a distributed run.

Lightning's ``ddp`` strategy starts processes 1..N-1 of a node by running the
command line of process 0 again (``sys.argv``, with ``hydra.run.dir``,
``hydra.job.name`` and ``hydra.output_subdir=null`` appended when Hydra is in
use). Hydra has by then replaced ``sys.argv`` with its own, and in a multirun
(``-m``) that command line is the whole sweep, which would start the sweep again
in every process. So while a step runs, :func:`single_run_argv` makes
``sys.argv`` this job alone as a plain run:

    <the seq-unet command> <step> [config options] <this job's overrides> hydra.mode=RUN

with the job's own values in a multirun (``seed=1``, not ``seed=0,1``), and the
run folder Lightning hands over pointed at this job's folder, so that every
process of a job composes the same configuration and trains into the same folder.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

# options of the Hydra command line that take a value in the next argument
_VALUE_OPTIONS = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-p", "--package",
                  "--experimental-rerun"}
_MULTIRUN_OPTIONS = {"-m", "--multirun"}


def options(args: list[str]) -> list[str]:
    """The Hydra options among ``args`` (with their values), less ``-m``/``--multirun``; no overrides."""
    out, take_next = [], False
    for a in args:
        if take_next:
            out.append(a)
            take_next = False
        elif a.startswith("-") and a not in _MULTIRUN_OPTIONS:
            out.append(a)
            take_next = a in _VALUE_OPTIONS
    return out


def job_argv(argv0: str, step: str, args: list[str], hydra_overrides: list[str],
             task_overrides: list[str]) -> list[str]:
    """``seq-unet <step>`` with the options of ``args`` and one job's overrides, as a single run."""
    own = ("hydra.mode", "hydra.job.name")  # hydra.job.name is added by seq_unet.cli.main.hydra_argv
    kept = [o for o in hydra_overrides if o.split("=", 1)[0].lstrip("+~") not in own]
    return [argv0, step, *options(args), *kept, *task_overrides, "hydra.mode=RUN"]


@contextlib.contextmanager
def single_run_argv(argv0: str, step: str, args: list[str]) -> Iterator[None]:
    """While the block runs: ``sys.argv`` is this Hydra job as a single run (see the module docstring)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import read_write

    if not HydraConfig.initialized():
        yield
        return
    hc = HydraConfig.get()
    saved_argv, saved_dir = sys.argv, None
    sys.argv = job_argv(argv0, step, args, list(hc.overrides.hydra), list(hc.overrides.task))
    if hc.mode == RunMode.MULTIRUN:
        # Lightning hands ``hydra.run.dir`` to the processes it starts: this job's own folder
        saved_dir = hc.run.dir
        with read_write(hc.run):
            hc.run.dir = hc.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_dir is not None:
            with read_write(hc.run):
                hc.run.dir = saved_dir

"""``seq-unet <step> [Hydra overrides]``: one command per pipeline step.

Every step composes the same Hydra config (``conf/``), so an override such as
``data=mygenome`` or ``model.depth=4`` means the same thing to every step. The
Snakemake workflow calls these commands; a user can run any step alone.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from hydra.errors import CompactHydraException

USAGE = """usage: seq-unet <step> [key=value ...] [hydra options]

Predict genome-wide tracks from DNA sequence with a 1D dilated U-Net.

steps (in pipeline order):
{steps}

Each step takes Hydra overrides of the config in conf/ (see `seq-unet <step> --cfg job`):
  seq-unet train data=sacCer3 model.depth=4 trainer.max_epochs=20
  seq-unet train -m model.skip=concat,add,none seed=0,1,2      # multirun sweep
  seq-unet train -m hparams_search=unet_optuna                  # Optuna search (extra `sweeps`)
  seq-unet train -m hydra/launcher=joblib hydra.launcher.n_jobs=2 seed=0,1   # runs in parallel
  seq-unet train -m hydra/launcher=slurm hydra.launcher.partition=gpu seed=0,1,2  # SLURM jobs
  seq-unet predict predict.ckpt=model.ckpt predict.fasta=other.fa predict.out_dir=out/
Own data: put mygenome.yaml beside conf/data/sacCer3.yaml, or in a folder of
your own with hydra.searchpath=[file:///abs/path/to/conf] and data=mygenome.
The whole pipeline: `snakemake --cores N [--config data=NAME]`.
"""


def config_dir() -> Path:
    """The packaged config folder (wheel install) or the repository's ``conf/`` (source/editable)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").exists():
            return candidate
    raise FileNotFoundError(f"seq-unet configuration folder not found near {here}")


def _step_help(step: str, fn) -> str:
    doc = (fn.__doc__ or "").strip()
    return (f"usage: seq-unet {step} [key=value ...] [--cfg job] [-m]\n\n{doc}\n\n"
            f"Options are Hydra overrides of the config in {config_dir()}.\n"
            f"`seq-unet {step} --cfg job` prints the resolved config; `--info` shows the search path.\n")


def main(argv: list[str] | None = None) -> int:
    from seq_unet.cli.steps import STEPS

    argv = list(sys.argv[1:] if argv is None else argv)
    steps = "\n".join(f"  {name:<13} {(fn.__doc__ or '').strip().splitlines()[0]}" for name, fn in STEPS.items())
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(steps=steps))
        return 0
    step, rest = argv[0], argv[1:]
    if step not in STEPS:
        print(f"seq-unet: unknown step {step!r}\n\n" + USAGE.format(steps=steps), file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in rest):
        print(_step_help(step, STEPS[step]))
        return 0
    return _run_hydra(step, STEPS[step], rest)


def hydra_argv(step: str, args: list[str]) -> list[str]:
    """The argv Hydra sees: the user's arguments with ``hydra.job.name=<step>`` among the overrides.

    Hydra takes its overrides as one run of positional arguments, so the job
    name joins the user's overrides rather than standing before flags like ``-m``.
    """
    at = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), len(args))
    return [f"seq-unet-{step}", *args[:at], f"hydra.job.name={step}", *args[at:]]


def worker_message(message: str) -> str:
    """The user's error out of a message re-raised from a DataLoader worker (which embeds a traceback)."""
    marker = "InputError: "
    if "Original Traceback" in message and marker in message:
        return message.rsplit(marker, 1)[1].strip()
    return message


class RunFailed(CompactHydraException):
    """One run of a multirun stopped on an input error.

    Unlike the ``SystemExit`` of a single run, it is an ordinary exception: the
    launcher (local, joblib or SLURM) records that run as failed, the Optuna
    sweeper marks the trial failed (``hydra.sweeper.max_failure_rate`` decides
    whether the search goes on), and Hydra prints the message without a
    traceback when the sweep stops on it.
    """


def _fail(step: str, message: str, multirun: bool = False):
    logging.getLogger("seq_unet").error("%s", message)
    if multirun:
        raise RunFailed(f"seq-unet {step}: error: {message}") from None
    print(f"seq-unet {step}: error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


class _HeldStderr:
    """``sys.stderr`` that holds what is written until the run starts.

    Hydra writes its own records of a run (``.hydra/*.yaml``, the job log)
    before the task function is called; when it cannot (a full disk, a quota),
    it prints its own traceback. Holding stderr until the task starts lets the
    command replace that traceback by one line; anything else held is shown
    unchanged. Only a single run holds it: a multirun's jobs may run in other
    processes (joblib, SLURM).
    """

    def __init__(self, real):
        self.real, self.held, self.holding = real, [], True

    def write(self, text: str) -> int:
        if self.holding:
            self.held.append(text)
            return len(text)
        return self.real.write(text)

    def flush(self) -> None:
        if not self.holding:
            self.real.flush()

    def release(self, show: bool = True) -> None:
        if self.holding:
            self.holding = False
            if show:
                self.real.write("".join(self.held))
                self.real.flush()
            self.held = []

    def __getattr__(self, name):  # fileno, isatty, encoding ...: the real stream's
        return getattr(self.real, name)


def _release_stderr() -> None:
    """The run starts: show what was held and give ``sys.stderr`` back."""
    if isinstance(sys.stderr, _HeldStderr):
        sys.stderr.release()
        sys.stderr = sys.stderr.real


def _asks_for_multirun(args: list[str]) -> bool:
    """Whether the command line starts a multirun (``-m``, ``hydra.mode=MULTIRUN``, an ``hparams_search``)."""
    return any(a in ("-m", "--multirun") or a.lstrip("+").startswith(("hydra.mode=", "hparams_search="))
               for a in args)


def _hydra_write_error(exc: SystemExit, write_errors) -> OSError | None:
    """The write error Hydra stopped on (exit 1) before the run started, if that is why it stopped."""
    cause = exc.__context__
    if exc.code == 1 and isinstance(cause, OSError) and cause.errno in write_errors:
        return cause
    return None


def _failed_file(error: OSError) -> tuple[str, str] | None:
    """Name and mode of the file Hydra was writing when ``error`` happened.

    A write that fails on a full disk raises an ``OSError`` without a file name;
    the file object being written, the innermost one open for writing among the
    frames' locals, still names it.
    """
    import io

    found, tb = None, error.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            name, mode = getattr(value, "name", None), getattr(value, "mode", "")
            if isinstance(value, io.IOBase) and isinstance(name, str) and isinstance(mode, str) and \
                    set(mode) & set("wxa"):
                found = name, mode
        tb = tb.tb_next
    return found


def _default_start_method() -> None:
    """Give multiprocessing back the platform's default start method in a joblib worker process.

    The joblib launcher (``hydra/launcher=joblib``) runs each job in a loky
    worker, which makes ``loky`` the default start method; DataLoader workers
    cannot be started with it (``train.num_workers`` > 0 would fail).
    """
    import multiprocessing

    if multiprocessing.get_start_method(allow_none=True) == "loky":
        multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _report_write_error(step: str, error: OSError) -> None:
    """One line for a file Hydra could not write (its record of the run); a file it cut short is removed."""
    where, left = error.filename, ""
    if where is None and (failed := _failed_file(error)):
        where, mode = failed
        if "a" not in mode and os.path.isfile(where):  # cut short: Hydra opened it to write it whole
            os.unlink(where)
            left = "; nothing was left under that name"
    where = where or f"Hydra's record of the run (.hydra/, {step}.log)"
    print(f"seq-unet {step}: error: cannot write {where}: {error.strerror}{left}", file=sys.stderr)


def _run_hydra(step: str, fn, args: list[str]) -> int:
    import hydra
    from omegaconf import DictConfig

    from seq_unet.cli.relaunch import single_run_argv
    from seq_unet.config import missing_values, register
    from seq_unet.errors import InputError
    from seq_unet.io.atomic import WRITE_ERRORS

    register()
    result: dict = {}

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
    def _task(cfg: DictConfig):
        _release_stderr()  # (not `held`: the joblib launcher pickles this function)
        multirun = _is_multirun()
        _default_start_method()
        missing = missing_values(cfg)
        if missing:
            _fail(step, missing, multirun)
        try:
            with single_run_argv(saved[0], step, args):  # what Lightning's DDP launcher runs again
                value = fn(cfg)
        except InputError as exc:
            _fail(step, worker_message(str(exc)), multirun)
        except OSError as exc:
            if exc.errno not in WRITE_ERRORS:  # seq_unet.io.atomic: full disk, quota, read-only, too large
                raise
            _fail(step, f"cannot write {exc.filename or 'an output file'}: {exc.strerror}", multirun)
        result["value"] = value
        return value

    saved = sys.argv
    sys.argv = hydra_argv(step, args)
    held = _HeldStderr(sys.stderr)
    if _asks_for_multirun(args):  # the jobs may run elsewhere (joblib, SLURM): nothing is held
        held.release()
    sys.stderr = held
    try:
        _task()
    except SystemExit as exc:
        # Hydra reports an exception that ends a multirun, then exits with 1 while handling it:
        # a run's input error exits with 2, as a single run's does
        if exc.code == 1 and isinstance(exc.__context__, RunFailed):
            raise SystemExit(2) from None
        error = _hydra_write_error(exc, WRITE_ERRORS) if held.holding else None
        if error is None:
            raise
        held.release(show=False)  # Hydra's traceback of its own failed write
        sys.stderr = held.real
        _report_write_error(step, error)
        raise SystemExit(2) from None
    finally:
        held.release()
        if sys.stderr is held:
            sys.stderr = held.real
        sys.argv = saved
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

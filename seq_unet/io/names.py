"""The names of the files written per track.

An output *name* is a file name without ``.bw``: ``<track>`` (the prediction),
``<track>.std`` (its per-base standard deviation, Monte Carlo dropout or an
ensemble), ``<track>.initiation`` (its initiation rate, kinetic head) and
``<track>.<baseline>`` (a baseline's prediction, baselines :data:`BASELINES`).
:func:`bigwig` turns a name into its file name.
"""

from __future__ import annotations

BIGWIG = ".bw"
STD = "std"
INITIATION = "initiation"
BASELINES = ("gc", "kmer_ridge")


def bigwig(name: str) -> str:
    """The bigWig file name of an output name: ``<name>.bw``."""
    return f"{name}{BIGWIG}"


def std_name(track: str) -> str:
    """The output name of a track's per-base standard deviation: ``<track>.std``."""
    return f"{track}.{STD}"


def initiation_name(track: str) -> str:
    """The output name of a track's initiation rate: ``<track>.initiation``."""
    return f"{track}.{INITIATION}"


def baseline_name(track: str, baseline: str) -> str:
    """The output name of a baseline's prediction of a track: ``<track>.<baseline>``."""
    return f"{track}.{baseline}"


def is_std(name: str) -> bool:
    """Whether an output name is a standard deviation (see :func:`std_name`)."""
    return name.endswith(f".{STD}")


def is_initiation(name: str) -> bool:
    """Whether an output name is an initiation rate (see :func:`initiation_name`)."""
    return name.endswith(f".{INITIATION}")

# seq-unet workflow: genome FASTA + measured bigWig tracks -> windows -> dataset
# -> trained U-Net -> per-base bigWig predictions -> evaluation -> browser files.
#
#   snakemake --cores 2                        # bundled yeast data (conf/data/sacCer3.yaml)
#   snakemake --cores 8 --config data=NAME     # conf/data/NAME.yaml, outputs in results/NAME/
#   snakemake --workflow-profile workflows/profiles/slurm --config data=NAME   # each step a SLURM job
#
# Threads, memory and wall time of each step: workflows/profiles/default (found through
# profiles/, a link to workflows/profiles), or the SLURM profile that replaces it.
#   snakemake --report report.html             # after a run: metrics, plots, resources, configuration
#
# Every rule calls a `seq-unet <step>` command, so each step also runs alone.

import os

from snakemake.utils import min_version

min_version("8.20")


# defaults, found beside this Snakefile whatever the working directory (-d)
configfile: os.path.join(workflow.basedir, "workflows", "config.yaml")


include: "workflows/rules/common.smk"
include: "workflows/rules/pipeline.smk"


# `snakemake --report report.html`: one self-contained page with the metrics, the plots, each
# step's run time and memory and the configuration (captions in workflows/report/)
report: "workflows/report/workflow.rst"


rule all:
    input:
        final_outputs(),
        benchmarks(),
    default_target: True


# a failed step's own message (one line naming the file and value) is the last line of its
# log; show it here rather than only the log's path
onerror:
    import glob
    import sys

    for _log in sorted(glob.glob(f"{RESULTS}/logs/*.log")):
        with open(_log, errors="replace") as _fh:
            for _line in _fh:
                if _line.startswith("seq-unet ") and ": error: " in _line:
                    print(f"{_log}: {_line.rstrip()}", file=sys.stderr)

# seq-unet workflow: genome FASTA + measured bigWig tracks -> windows -> dataset
# -> trained U-Net -> per-base bigWig predictions -> evaluation -> browser files.
#
#   snakemake --cores 2                        # bundled yeast data (conf/data/sacCer3.yaml)
#   snakemake --cores 8 --config data=NAME     # conf/data/NAME.yaml, outputs in results/NAME/
#
# Every rule calls a `seq-unet <step>` command, so each step also runs alone.

import os

from snakemake.utils import min_version

min_version("8.20")


# defaults, found beside this Snakefile whatever the working directory (-d)
configfile: os.path.join(workflow.basedir, "workflows", "config.yaml")


include: "workflows/rules/common.smk"
include: "workflows/rules/pipeline.smk"


rule all:
    input:
        final_outputs(),
    default_target: True

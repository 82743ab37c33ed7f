# The pipeline steps. Each calls `seq-unet <step>` with the same Hydra arguments, plus the
# paths of its input and output (params.hydra), so that every path is spelled here only.
# params.digest is the rerun trigger: the configuration the step reads (common.smk, STEP_CONFIG).
# Threads, memory (MB), wall time (minutes) and GPUs come from the workflow profile
# (workflows/profiles/default, or the SLURM one); memory and wall time grow with each
# retry of a failed job.
# A benchmark file per step records the wall time and peak memory it took, the
# numbers to size resources by for another genome.


rule genome:
    input:
        fasta=DATA_CFG["fasta"],
        tracks=TRACK_FILES,
    output:
        fasta=f"{RESULTS}/genome/genome.fa",
        fai=f"{RESULTS}/genome/genome.fa.fai",
        sizes=f"{RESULTS}/genome/chrom.sizes",
    log:
        f"{RESULTS}/logs/genome.log",
    benchmark:
        f"{RESULTS}/benchmarks/genome.tsv"
    params:
        hydra=hydra_args({
            "paths.fasta": from_output("fasta"),
            "paths.chrom_sizes": from_output("sizes"),
        }),
        digest=config_digest("genome"),
    conda:
        "../envs/seq-unet.yaml"
    shell:
        "seq-unet genome {params.hydra} > {log} 2>&1"


rule windows:
    input:
        fasta=rules.genome.output.fasta,
        fai=rules.genome.output.fai,
        tracks=TRACK_FILES,
        blacklist=BLACKLIST,
    output:
        f"{RESULTS}/windows/windows.tsv",
    log:
        f"{RESULTS}/logs/windows.log",
    benchmark:
        f"{RESULTS}/benchmarks/windows.tsv"
    params:
        hydra=hydra_args({"paths.fasta": from_input("fasta"), "paths.windows": from_output(0)}),
        digest=config_digest("windows"),
    conda:
        "../envs/seq-unet.yaml"
    shell:
        "seq-unet windows {params.hydra} > {log} 2>&1"


rule extract:
    input:
        windows=rules.windows.output[0],
        fasta=rules.genome.output.fasta,
        tracks=TRACK_FILES,
        blacklist=BLACKLIST,
    output:
        directory(f"{RESULTS}/dataset"),
    log:
        f"{RESULTS}/logs/extract.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract.tsv"
    params:
        hydra=hydra_args({
            "paths.windows": from_input("windows"),
            "paths.fasta": from_input("fasta"),
            "paths.dataset": from_output(0),
        }),
        digest=config_digest("extract"),
        # the on-disk layout the code writes and reads: a dataset of an older layout is rebuilt
        layout=f"dataset format {DATASET_FORMAT}",
    conda:
        "../envs/seq-unet.yaml"
    shell:
        "seq-unet extract {params.hydra} > {log} 2>&1"


rule train:
    input:
        rules.extract.output[0],
    output:
        ckpt=f"{RESULTS}/train/best.ckpt",
        summary=f"{RESULTS}/train/train_summary.json",
    log:
        f"{RESULTS}/logs/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/train.tsv"
    params:
        hydra=hydra_args({"paths.dataset": from_input(0)}),
        run_dir=lambda wildcards, output: os.path.dirname(output.ckpt),  # Hydra's run folder: the outputs
        digest=config_digest("train"),
    conda:
        "../envs/seq-unet.yaml"
    shell:
        "seq-unet train {params.hydra} hydra.run.dir={params.run_dir} train.num_workers={threads} > {log} 2>&1"


# a member of a seed ensemble (`ensemble: K` in the workflow config): the same training with seed M
rule train_member:
    input:
        rules.extract.output[0],
    output:
        ckpt=f"{RESULTS}/train/member{{member}}/best.ckpt",
        summary=f"{RESULTS}/train/member{{member}}/train_summary.json",
    log:
        f"{RESULTS}/logs/train_member{{member}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_member{{member}}.tsv"
    wildcard_constraints:
        member=r"\d+",
    params:
        hydra=hydra_args({"paths.dataset": from_input(0)}),
        run_dir=lambda wildcards, output: os.path.dirname(output.ckpt),  # Hydra's run folder: the outputs
        digest=config_digest("train", leave_out=["seed"]),
    conda:
        "../envs/seq-unet.yaml"
    shell:
        "seq-unet train {params.hydra} seed={wildcards.member} hydra.run.dir={params.run_dir} "
        "train.num_workers={threads} > {log} 2>&1"


rule predict:
    input:
        ckpt=CHECKPOINTS,
        fasta=rules.genome.output.fasta,
        fai=rules.genome.output.fai,
    output:
        expand(f"{RESULTS}/predictions/{{track}}.bw", track=PREDICTED),
    log:
        f"{RESULTS}/logs/predict.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict.tsv"
    params:
        hydra=hydra_args({
            "paths.fasta": from_input("fasta"),
            "paths.ckpt": from_input("ckpt"),
            "paths.predictions": from_output(0, folder=True),
        }),
        digest=config_digest("predict"),
        mc=MC_SAMPLES,
        ckpt=lambda wildcards, input: shlex.quote("predict.ckpt=[" + ",".join(input.ckpt) + "]") if ENSEMBLE > 1 else "",
    conda:
        "../envs/seq-unet.yaml"
    shell:
        "seq-unet predict {params.hydra} predict.mc_samples={params.mc} {params.ckpt} > {log} 2>&1"


rule baseline:
    input:
        fasta=rules.genome.output.fasta,
        sizes=rules.genome.output.sizes,
        tracks=TRACK_FILES,
    output:
        expand(f"{RESULTS}/baseline/{{track}}.{{baseline}}.bw", track=TRACKS, baseline=BASELINES),
    log:
        f"{RESULTS}/logs/baseline.log",
    benchmark:
        f"{RESULTS}/benchmarks/baseline.tsv"
    params:
        hydra=hydra_args({
            "paths.fasta": from_input("fasta"),
            "paths.chrom_sizes": from_input("sizes"),
            "paths.baseline": from_output(0, folder=True),
        }),
        digest=config_digest("baseline"),
    conda:
        "../envs/seq-unet.yaml"
    shell:
        "seq-unet baseline {params.hydra} > {log} 2>&1"


rule evaluate:
    input:
        predictions=rules.predict.output,
        baselines=rules.baseline.output,
        tracks=TRACK_FILES,
        sizes=rules.genome.output.sizes,
        fasta=rules.genome.output.fasta,  # the origin-motif scan of the test chromosomes
    output:
        metrics=report(f"{RESULTS}/eval/metrics.tsv", caption=caption("metrics"), category="Evaluation"),
        plots=[
            report(f"{RESULTS}/eval/{track}.test_chroms.png", caption=caption("plot"), category="Evaluation",
                   labels={"track": track, "figure": "test chromosomes"})
            for track in TRACKS
        ],
        origins=report(f"{RESULTS}/eval/origins.tsv", caption=caption("origins"), category="Evaluation"),
        # Hydra's record of the run: the configuration every step composes (with the overrides)
        config=report(f"{RESULTS}/evaluate/.hydra/config.yaml", caption=caption("config"),
                      category="Configuration"),
    log:
        f"{RESULTS}/logs/evaluate.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate.tsv"
    params:
        hydra=hydra_args({
            "paths.fasta": from_input("fasta"),
            "paths.chrom_sizes": from_input("sizes"),
            "paths.predictions": from_input("predictions", folder=True),
            "paths.baseline": from_input("baselines", folder=True),
            "paths.eval": from_output("metrics", folder=True),
            "hydra.run.dir": from_output("config", folder=2),
        }),
        digest=config_digest("evaluate"),
    conda:
        "../envs/seq-unet.yaml"
    shell:
        "seq-unet evaluate {params.hydra} > {log} 2>&1"


rule browser:
    input:
        predictions=rules.predict.output,
        fasta=rules.genome.output.fasta,
        fai=rules.genome.output.fai,
        tracks=TRACK_FILES,
    output:
        session=f"{RESULTS}/browser/igv_session.xml",
        hub=directory(f"{RESULTS}/browser/hub"),
    log:
        f"{RESULTS}/logs/browser.log",
    benchmark:
        f"{RESULTS}/benchmarks/browser.tsv"
    params:
        hydra=hydra_args({
            "paths.fasta": from_input("fasta"),
            "paths.predictions": from_input("predictions", folder=True),
            "paths.browser": from_output("session", folder=True),
        }),
        digest=config_digest("browser"),
    conda:
        "../envs/seq-unet.yaml"
    shell:
        "seq-unet browser {params.hydra} > {log} 2>&1"

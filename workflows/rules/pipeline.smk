# The pipeline steps. Each calls `seq-unet <step>` with the same Hydra arguments.


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
    params:
        hydra=HYDRA,
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
    params:
        hydra=HYDRA,
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
    params:
        hydra=HYDRA,
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
    params:
        hydra=HYDRA,
    threads: 2
    resources:
        gpu=0,
    shell:
        "seq-unet train {params.hydra} train.num_workers={threads} > {log} 2>&1"


rule predict:
    input:
        ckpt=rules.train.output.ckpt,
        fasta=rules.genome.output.fasta,
        fai=rules.genome.output.fai,
    output:
        expand(f"{RESULTS}/predictions/{{track}}.bw", track=PREDICTED),
    log:
        f"{RESULTS}/logs/predict.log",
    params:
        hydra=HYDRA,
        mc=MC_SAMPLES,
    threads: 2
    shell:
        "seq-unet predict {params.hydra} predict.mc_samples={params.mc} > {log} 2>&1"


rule baseline:
    input:
        fasta=rules.genome.output.fasta,
        sizes=rules.genome.output.sizes,
        tracks=TRACK_FILES,
    output:
        expand(f"{RESULTS}/baseline/{{track}}.{{baseline}}.bw", track=TRACKS, baseline=BASELINES),
    log:
        f"{RESULTS}/logs/baseline.log",
    params:
        hydra=HYDRA,
    shell:
        "seq-unet baseline {params.hydra} > {log} 2>&1"


rule evaluate:
    input:
        predictions=rules.predict.output,
        baselines=rules.baseline.output,
        tracks=TRACK_FILES,
        sizes=rules.genome.output.sizes,
    output:
        metrics=f"{RESULTS}/eval/metrics.tsv",
        plots=expand(f"{RESULTS}/eval/{{track}}.test_chroms.png", track=TRACKS),
    log:
        f"{RESULTS}/logs/evaluate.log",
    params:
        hydra=HYDRA,
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
    params:
        hydra=HYDRA,
    shell:
        "seq-unet browser {params.hydra} > {log} 2>&1"

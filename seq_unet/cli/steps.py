"""The pipeline steps, each a function of the composed Hydra config.

These are thin: they read paths and options from the config and call the
library. ``seq_unet.cli.main`` turns each into a ``seq-unet <step>`` command.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from seq_unet.errors import InputError
from seq_unet.io.names import baseline_name, bigwig, initiation_name, std_name

log = logging.getLogger("seq_unet")


def _tracks(cfg: DictConfig) -> dict[str, str]:
    tracks = OmegaConf.to_container(cfg.data.tracks)
    if not tracks:
        raise InputError(f"data config {cfg.data.name!r} lists no tracks (data.tracks: name -> bigWig)")
    return tracks


def _spec(cfg: DictConfig):
    from seq_unet.data.windows import WindowSpec

    d = cfg.data
    return WindowSpec(d.window_length, d.stride, d.target_resolution, d.min_valid_fraction, d.max_shift)


def _split_of(cfg: DictConfig, chroms: list[str]) -> dict[str, str]:
    from seq_unet.data.windows import assign_splits

    return assign_splits(chroms, list(cfg.data.val_chroms), list(cfg.data.test_chroms))


def genome(cfg: DictConfig) -> None:
    """Decompress and index the FASTA, write chromosome sizes, check the tracks' chromosome names."""
    from seq_unet.io.bigwig_read import check_tracks_match_genome
    from seq_unet.io.fasta import prepare_fasta
    from seq_unet.io.genome import write_chrom_sizes

    sizes = prepare_fasta(cfg.data.fasta, cfg.paths.fasta)
    try:
        check_tracks_match_genome(sizes, _tracks(cfg))
    except InputError:  # the step failed: leave none of its outputs
        for path in (Path(cfg.paths.fasta), Path(f"{cfg.paths.fasta}.fai")):
            path.unlink(missing_ok=True)
        raise
    write_chrom_sizes(sizes, cfg.paths.chrom_sizes)
    log.info("genome %s: %d chromosomes, %d bp -> %s", cfg.data.fasta, len(sizes), sum(sizes.values()),
             cfg.paths.fasta)


def windows(cfg: DictConfig) -> None:
    """Tile the genome into windows, assign splits and describe masks (windows.tsv)."""
    from seq_unet.config import check_model_length
    from seq_unet.data.windows import make_windows
    from seq_unet.io.atomic import atomic_path

    spec = _spec(cfg)
    check_model_length(cfg, spec.length)
    df = make_windows(cfg.paths.fasta, _tracks(cfg), spec, list(cfg.data.val_chroms), list(cfg.data.test_chroms),
                      cfg.data.blacklist)
    with atomic_path(cfg.paths.windows) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    log.info("wrote %d windows to %s", len(df), cfg.paths.windows)


def extract(cfg: DictConfig) -> None:
    """Write the on-disk dataset (DNA codes, binned targets, masks, manifest) per split."""
    import pandas as pd

    from seq_unet.data.store import extract_dataset

    if not Path(cfg.paths.windows).exists():
        raise InputError(f"{cfg.paths.windows} does not exist; run `seq-unet windows` first")
    df = pd.read_csv(cfg.paths.windows, sep="\t", dtype={"chrom": str})
    manifest = extract_dataset(cfg.paths.fasta, _tracks(cfg), df, _spec(cfg), cfg.paths.dataset, cfg.data.blacklist,
                               extra={"data_config": OmegaConf.to_container(cfg.data, resolve=True)})
    for split, info in manifest["splits"].items():
        log.info("%s: %d windows on %s", split, info["windows"], ", ".join(info["chroms"]))


def train(cfg: DictConfig) -> float:
    """Train the U-Net on the extracted dataset; keep the best checkpoint on the validation chromosomes.

    Returns the best validation Pearson (mean over tracks), for sweepers. See :mod:`seq_unet.training`.
    """
    from seq_unet.training import train as train_model

    return train_model(cfg)


def _predict_options(cfg: DictConfig) -> dict:
    """Keyword arguments of :func:`~seq_unet.predict.genome.predict_genome` from ``cfg.predict``."""
    p = cfg.predict
    return {"window_length": p.window_length, "crop": p.crop, "batch_size": p.batch_size, "precision": p.precision,
            "std_precision": p.std_precision, "reverse_complement": p.reverse_complement,
            "mask_unknown": p.mask_unknown, "device": p.device, "mc_samples": p.mc_samples, "seed": cfg.seed,
            "smooth": p.smooth, "devices": p.devices, "rate_precision": p.rate_precision, "blend": p.blend}


def predict(cfg: DictConfig) -> None:
    """Predict every base of every chromosome and write one bigWig per track."""
    from seq_unet.predict.genome import predict_genome

    p = cfg.predict
    check_checkpoint(cfg)
    paths = predict_genome(_checkpoints(cfg), p.fasta, p.out_dir, **_predict_options(cfg))
    for track, path in paths.items():
        log.info("%s -> %s", track, path)


def _checkpoints(cfg: DictConfig) -> list[str]:
    """``predict.ckpt``: one checkpoint, or a list (the members of a seed ensemble)."""
    ckpt = cfg.predict.ckpt
    if OmegaConf.is_list(ckpt):
        paths = [str(c) for c in ckpt]
        if not paths:
            raise InputError("predict.ckpt is an empty list; give a checkpoint or the members of an ensemble")
        return paths
    return [str(ckpt)]


def check_checkpoint(cfg: DictConfig) -> None:
    """Check every checkpoint of ``predict.ckpt`` (one, or an ensemble's members) with :func:`check_one`."""
    for path in _checkpoints(cfg):
        check_one(cfg, path)


def check_one(cfg: DictConfig, path: str) -> None:
    """Refuse a checkpoint that does not fit the prediction asked for, unless ``predict.allow_mismatch``.

    Always compared: the package version and an explicit ``predict.window_length``.
    When the FASTA is the data config's own genome (the pipeline's case), also the
    track names, the window length, and the checksums of the genome and the track
    files against those the model was trained on. Another FASTA (a new genome)
    is predicted with whatever the checkpoint holds.
    """
    from seq_unet.checkpoint import KEY, mismatches, read_checkpoint
    from seq_unet.io.genome import file_md5

    p = cfg.predict
    ckpt = read_checkpoint(path)
    if not ckpt.get(KEY):
        log.warning("checkpoint %s records no provenance (version, configuration, data checksums); "
                    "it cannot be checked against this configuration", path)
    expect: dict = {"window_length": p.window_length}
    own_genome = Path(p.fasta).resolve() == Path(cfg.paths.fasta).resolve()
    if own_genome:
        tracks = _tracks(cfg)
        expect.update(tracks=list(tracks), window_length=p.window_length or cfg.data.window_length)
        if Path(p.fasta).exists():
            expect["genome_md5"] = file_md5(p.fasta)
        expect["track_md5"] = {t: file_md5(f) for t, f in tracks.items() if Path(f).exists()}
    problems = mismatches(ckpt, **expect)
    if not problems:
        return
    where = f"checkpoint {path} does not fit this prediction" + (
        f" of data config {cfg.data.name!r}" if own_genome else "")
    detail = "".join(f"\n  - {x}" for x in problems)
    if p.allow_mismatch:
        log.warning("%s (predicting anyway: predict.allow_mismatch=true):%s", where, detail)
        return
    raise InputError(f"{where}:{detail}\nTrain a model for this configuration, point predict.ckpt at the right "
                     "checkpoint, or set predict.allow_mismatch=true to predict anyway.")


def baseline(cfg: DictConfig) -> None:
    """Fit the GC and k-mer ridge baselines on the training chromosomes; write their bigWigs."""
    from seq_unet.evaluate.baseline import fit_baselines
    from seq_unet.io.genome import read_chrom_sizes

    sizes = read_chrom_sizes(cfg.paths.chrom_sizes)
    fit_baselines(cfg.paths.fasta, _tracks(cfg), _split_of(cfg, list(sizes)), cfg.paths.baseline,
                  cfg.evaluate.baseline_bin)


def evaluate(cfg: DictConfig) -> None:
    """Score predictions and baselines against the measured tracks; write metrics.tsv and plots."""
    from seq_unet.evaluate.metrics import evaluate as score_all
    from seq_unet.evaluate.plots import plot_chromosomes
    from seq_unet.io.atomic import atomic_path
    from seq_unet.io.genome import read_chrom_sizes
    from seq_unet.io.intervals import read_bed

    sizes = read_chrom_sizes(cfg.paths.chrom_sizes)
    split_of = _split_of(cfg, list(sizes))
    tracks = _tracks(cfg)
    preds = {"seq-unet": {t: str(Path(cfg.paths.predictions) / bigwig(t)) for t in tracks}}
    for name in ("kmer_ridge", "gc"):  # the order of the rows of metrics.tsv
        preds[name] = {t: str(Path(cfg.paths.baseline) / bigwig(baseline_name(t, name))) for t in tracks}
    for name, paths in preds.items():
        for t, path in paths.items():
            if not Path(path).exists():
                raise InputError(f"{path} ({name} prediction of {t}) does not exist; run the predict/baseline steps")
    blacklist = read_bed(cfg.data.blacklist, sizes) if cfg.data.blacklist else None
    df = score_all(preds, tracks, sizes, split_of, list(cfg.evaluate.resolutions), blacklist)
    out = Path(cfg.paths.eval)
    with atomic_path(out / "metrics.tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    test = {c: sizes[c] for c in sizes if split_of[c] == "test"}
    res = cfg.evaluate.resolutions[0]
    for t in tracks:
        sub = df[(df.track == t) & (df.resolution_bp == res) & (df.split == "test")]
        r = {(row.predictor, row.chrom): row.pearson for row in sub.itertuples()}
        plot_chromosomes(t, tracks[t], {k: v[t] for k, v in preds.items()}, test, out / f"{t}.test_chroms.png",
                         res, r)
    summary = df[(df.split == "test") & (df.chrom == "all")]
    for row in summary.itertuples():
        log.info("test %-8s %-10s %6d bp: pearson %.3f spearman %.3f (%d bins)", row.track, row.predictor,
                 row.resolution_bp, row.pearson, row.spearman, row.n_bins)
    _origin_report(cfg, tracks, list(test), out / "origins.tsv")


def _origin_report(cfg: DictConfig, tracks: dict[str, str], chroms: list[str], path: Path) -> None:
    """origins.tsv: how often the top peaks of each measured, predicted and initiation-rate track on the
    test chromosomes lie near an exact origin-motif match, against random positions."""
    import pandas as pd

    from seq_unet.evaluate.origins import motif_sites, peak_enrichment
    from seq_unet.io.atomic import atomic_path

    o = cfg.evaluate.origins
    sites = motif_sites(cfg.paths.fasta, chroms, o.motif)  # one scan of the genome for every signal
    rows = []
    for t, measured in tracks.items():
        candidates = {"measured": measured, "seq-unet": Path(cfg.paths.predictions) / bigwig(t),
                      "seq-unet initiation rate": Path(cfg.paths.predictions) / bigwig(initiation_name(t))}
        for kind, file in candidates.items():
            if not Path(file).exists():
                continue
            r = peak_enrichment(str(file), cfg.paths.fasta, chroms, n_peaks=o.peaks, radius=o.radius,
                                separation=o.separation, motif=o.motif, sites=sites)
            rows.append({"track": t, "signal": kind, **r})
            log.info("origins %-8s %-24s: %d/%d top peaks within %d bp of %s (%.3f; random %.3f, %.2fx)", t, kind,
                     r["peaks_with_motif"], r["peaks"], o.radius, o.motif, r["peak_fraction"],
                     r["random_fraction"], r["enrichment"])
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.4f")


def browser(cfg: DictConfig) -> None:
    """Write an IGV session and a UCSC track hub with the predicted, uncertainty and measured tracks."""
    from seq_unet.predict.browser import display_range, write_igv_session, write_track_hub

    tracks = _tracks(cfg)
    predicted = {t: str(Path(cfg.predict.out_dir) / bigwig(t)) for t in tracks}
    for t, path in predicted.items():
        if not Path(path).exists():
            raise InputError(f"{path} (prediction of {t}) does not exist; run `seq-unet predict` first")
    def beside(name_of) -> dict[str, str]:  # present when the prediction wrote them
        paths = {t: str(Path(cfg.predict.out_dir) / bigwig(name_of(t))) for t in tracks}
        return {t: p for t, p in paths.items() if Path(p).exists()}

    std, initiation = beside(std_name), beside(initiation_name)  # Monte Carlo dropout or ensemble; kinetic head
    ranges = {t: display_range([predicted[t], tracks[t]]) for t in tracks}
    out = Path(cfg.paths.browser)
    session = write_igv_session(out / "igv_session.xml", cfg.predict.fasta, predicted, tracks, uncertainty=std,
                                initiation=initiation, ranges=ranges)
    log.info("IGV session -> %s (IGV: File > Open Session...)", session)
    hub = write_track_hub(out / "hub", cfg.predict.fasta, predicted, tracks, uncertainty=std, genome=cfg.data.name,
                          ucsc_assembly=cfg.data.ucsc_assembly, email=cfg.browser.hub_email,
                          initiation=initiation, ranges=ranges)
    log.info("track hub -> %s (serve the results folder over HTTP and give the URL of hub.txt to the UCSC "
             "Genome Browser, or open it in IGV: File > Load Track Hub)", hub)


def sweep_summary(cfg: DictConfig) -> None:
    """Collect a training sweep's runs into tables sorted by the validation score (sweep.dir=...)."""
    from seq_unet.evaluate.sweep import find_runs, markdown, summarise
    from seq_unet.io.atomic import atomic_path
    from seq_unet.io.genome import read_chrom_sizes

    if not cfg.sweep.dir:
        raise InputError("give the sweep folder: seq-unet sweep-summary sweep.dir=results/<data>/sweeps/<time>")
    sweep_dir = Path(cfg.sweep.dir)
    find_runs(sweep_dir)  # a missing or empty sweep folder is reported before anything else
    sizes = read_chrom_sizes(cfg.paths.chrom_sizes)
    kwargs = {**_predict_options(cfg), "mc_samples": 0}  # runs are compared on deterministic predictions
    tracks = _tracks(cfg)
    runs, variants = summarise(sweep_dir, tracks, sizes, _split_of(cfg, list(sizes)), cfg.paths.fasta,
                               cfg.sweep.resolution, cfg.sweep.predict, kwargs)
    with atomic_path(sweep_dir / "runs.tsv") as tmp:
        runs.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    with atomic_path(sweep_dir / "variants.csv") as tmp:
        variants.to_csv(tmp, index=False, float_format="%.4f")
    table = markdown(variants, list(tracks))
    with atomic_path(sweep_dir / "variants.md") as tmp:
        tmp.write_text(table + "\n")
    print(table)
    best = runs.iloc[0]
    log.info("%d runs, %d variants -> %s, %s; best run %s (%s seed=%s): %s", len(runs), len(variants),
             sweep_dir / "runs.tsv", sweep_dir / "variants.csv", best.run, best.variant, best.seed, best.checkpoint)


STEPS = {
    "genome": genome,
    "windows": windows,
    "extract": extract,
    "train": train,
    "predict": predict,
    "baseline": baseline,
    "evaluate": evaluate,
    "browser": browser,
    "sweep-summary": sweep_summary,
}

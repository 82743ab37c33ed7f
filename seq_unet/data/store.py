"""On-disk dataset: one folder per split, read lazily through memory maps.

Layout of ``<dataset>/<split>/``:
    ``dna.npy``     uint8 ``(n_bases,)`` base codes (A,C,G,T = 0..3, unknown = 4) of the
                    split's chromosomes, each stored once, one after the other
    ``chroms.tsv``  the chromosomes of ``dna.npy``: ``chrom``, ``offset`` (its first base's
                    index in ``dna.npy``), ``length``
    ``target.npy``  float32 ``(n_windows, n_tracks, (length + 2 * max_shift) // resolution)``
    ``mask.npy``    bool, same shape as target: True where the target is valid
    ``windows.tsv`` the windows, row ``i`` describing index ``i`` of the target and mask arrays
and ``<dataset>/manifest.json`` describes the whole (format, window length, stride,
resolution, tracks, splits, genome checksum, per-track train statistics).
A window's DNA, with its ``max_shift`` flanks, is cut from its chromosome's
codes when it is read, unknown past the chromosome's ends; so overlapping
windows and their flanks share the stored bases. The targets and masks stay
per window: they are binned (``resolution`` bases per value) and small beside
the DNA at the usual resolutions.
Arrays are written into memory maps, so extraction never holds the dataset in
RAM, and the folder appears under its final name only when complete.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from seq_unet import __version__
from seq_unet.data.windows import SPLITS, WindowSpec, base_masks, bin_targets
from seq_unet.errors import InputError
from seq_unet.io.atomic import atomic_dir, ensure_free_space
from seq_unet.io.bases import one_hot, padded_codes, reverse_complement_codes
from seq_unet.io.bigwig_read import open_bigwigs
from seq_unet.io.genome import Genome, file_md5
from seq_unet.io.intervals import read_bed
from seq_unet.model.inputs import position_channel

log = logging.getLogger(__name__)

# the layout written by this version, recorded in the manifest; a dataset of another
# layout (1: every window's DNA stored with its flanks, no ``dataset_format`` key) is refused
DATASET_FORMAT = 2


def count_unknown_bases(genome: Genome, chunk: int = 1 << 23) -> dict[str, int]:
    """Per chromosome, the number of N / IUPAC-ambiguous bases (read in chunks)."""
    out = {}
    for chrom, size in genome.sizes.items():
        out[chrom] = sum(int((genome.codes(chrom, s, min(s + chunk, size)) == 4).sum())
                         for s in range(0, size, chunk))
    return out


def extract_dataset(fasta: str, tracks: dict[str, str], windows: pd.DataFrame, spec: WindowSpec,
                    out_dir: str | os.PathLike, blacklist_bed: str | None = None,
                    extra: dict | None = None) -> dict:
    """Write the usable windows of every split to ``out_dir`` and return the manifest."""
    genome = Genome(fasta)
    blacklist = read_bed(blacklist_bed, genome.sizes) if blacklist_bed else None
    names = list(tracks)
    bws = open_bigwigs({n: tracks[n] for n in names})
    manifest = _manifest_start(fasta, tracks, spec, genome)
    # sums, sums of squares and counts of the valid train target bins, per track
    stats = (np.zeros(len(names)), np.zeros(len(names)), np.zeros(len(names)))
    kept = windows[windows.split.isin(SPLITS) & windows.usable]
    n_bins_all = spec.stored_length // spec.resolution
    bases = sum(genome.sizes[c] for c in set(kept.chrom))
    need = bases + len(kept) * len(names) * n_bins_all * 5 + (1 << 20)
    try:
        with atomic_dir(out_dir) as tmp:
            # the arrays are memory maps: on a full disk a write would crash the process, not raise
            ensure_free_space(tmp, need, out_dir)
            for split in SPLITS:
                sub = windows[(windows.split == split) & windows.usable].reset_index(drop=True)
                _write_split(tmp / split, sub, genome, bws, spec, blacklist, stats if split == "train" else None)
                manifest["splits"][split] = {
                    "windows": len(sub),
                    "chroms": sorted(set(sub.chrom), key=list(genome.sizes).index),
                    "valid_bins": {t: int(sub[f"valid_bins_{t}"].sum()) for t in names},
                }
            manifest.update(_standardisation(names, *stats))
            manifest["unknown_bases"] = count_unknown_bases(genome)
            if extra:
                manifest.update(extra)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    finally:
        for bw in bws.values():
            bw.close()
    return manifest


def _manifest_start(fasta: str, tracks: dict[str, str], spec: WindowSpec, genome: Genome) -> dict:
    """The manifest's description of the dataset's sources and settings, before any window is written."""
    names = list(tracks)
    return {
        "seq_unet_version": __version__,
        "dataset_format": DATASET_FORMAT,
        "window_length": spec.length,
        "stride": spec.stride,
        "target_resolution": spec.resolution,
        "min_valid_fraction": spec.min_valid_fraction,
        "max_shift": spec.max_shift,
        "tracks": names,
        "track_files": {n: str(tracks[n]) for n in names},
        "track_md5": {n: file_md5(tracks[n]) for n in names},
        "genome_fasta": str(fasta),
        "genome_md5": file_md5(fasta),
        "chrom_sizes": genome.sizes,
        "unknown_bases": {},
        "splits": {},
    }


def _write_split(d: Path, sub: pd.DataFrame, genome: Genome, bws: dict, spec: WindowSpec, blacklist,
                 stats: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> None:
    """One split's windows ``sub`` in folder ``d``: the DNA of their chromosomes, and per window its
    binned targets and masks; with ``stats`` (the train split), add its valid target bins (the
    window's core, without the shift margins) to the sums, squares and counts."""
    d.mkdir()
    _write_dna(d, list(dict.fromkeys(sub.chrom)), genome)
    n, n_tracks = len(sub), len(bws)
    n_bins = spec.stored_length // spec.resolution
    core = slice(spec.max_shift // spec.resolution, spec.max_shift // spec.resolution + spec.n_bins)
    tgt = np.lib.format.open_memmap(d / "target.npy", "w+", np.float32, (n, n_tracks, n_bins))
    msk = np.lib.format.open_memmap(d / "mask.npy", "w+", np.bool_, (n, n_tracks, n_bins))
    for i, row in enumerate(sub.itertuples(index=False)):
        _, values, valid = base_masks(genome, bws, row.chrom, row.start - spec.max_shift,
                                      row.end + spec.max_shift, blacklist)
        target, mask = bin_targets(values, valid, spec)
        tgt[i], msk[i] = target, mask
        if stats is not None:
            sums, sq, cnt = stats
            t, k = target[:, core], mask[:, core]
            sums += np.where(k, t, 0).sum(-1)
            sq += np.where(k, t.astype(np.float64) ** 2, 0).sum(-1)
            cnt += k.sum(-1)
    for arr in (tgt, msk):
        arr.flush()
    del tgt, msk
    sub.to_csv(d / "windows.tsv", sep="\t", index=False)


def _write_dna(d: Path, chroms: list[str], genome: Genome, chunk: int = 1 << 23) -> None:
    """The base codes of ``chroms``, each once and in this order, as ``d/dna.npy``, and ``d/chroms.tsv``."""
    lengths = np.array([genome.sizes[c] for c in chroms], np.int64)
    offsets = np.cumsum(lengths) - lengths
    dna = np.lib.format.open_memmap(d / "dna.npy", "w+", np.uint8, (int(lengths.sum()),))
    for chrom, off, size in zip(chroms, offsets, lengths):
        for s in range(0, int(size), chunk):
            e = min(s + chunk, int(size))
            dna[off + s : off + e] = genome.codes(chrom, s, e)
    dna.flush()
    del dna
    pd.DataFrame({"chrom": chroms, "offset": offsets, "length": lengths}).to_csv(
        d / "chroms.tsv", sep="\t", index=False)


def _standardisation(names: list[str], sums: np.ndarray, sq: np.ndarray, cnt: np.ndarray) -> dict:
    """The manifest's per-track train mean and standard deviation of the valid target bins."""
    if (cnt == 0).any():
        empty = [t for t, c in zip(names, cnt) if c == 0]
        raise InputError(f"tracks {empty} have no valid value on any training chromosome")
    mean = sums / cnt
    std = np.sqrt(np.maximum(sq / cnt - mean**2, 1e-12))
    return {"target_mean": {t: float(m) for t, m in zip(names, mean)},
            "target_std": {t: float(s) for t, s in zip(names, std)}}


def load_manifest(dataset_dir: str | os.PathLike) -> dict:
    path = Path(dataset_dir) / "manifest.json"
    if not path.exists():
        raise InputError(f"no dataset at {dataset_dir} (missing manifest.json); run `seq-unet extract` first")
    manifest = json.loads(path.read_text())
    fmt = manifest.get("dataset_format", 1)
    if fmt != DATASET_FORMAT:
        raise InputError(
            f"the dataset at {dataset_dir} has format {fmt} (written by seq-unet "
            f"{manifest.get('seq_unet_version', '?')}); this version reads format {DATASET_FORMAT}, which stores "
            "each chromosome's DNA once: write it again with `seq-unet extract` (in the workflow: "
            "snakemake --forcerun extract)")
    return manifest


def open_split(split_dir: str | os.PathLike, manifest: dict) -> tuple[np.ndarray, dict[str, int], np.ndarray,
                                                                      np.ndarray]:
    """Memory maps of a split folder, checked against the dataset's ``manifest``: the DNA codes, the
    index in them of each chromosome's first base, the per-window targets and the masks."""
    d = Path(split_dir)
    try:
        dna, tgt, msk = (np.load(d / f, mmap_mode="r") for f in ("dna.npy", "target.npy", "mask.npy"))
        chroms = pd.read_csv(d / "chroms.tsv", sep="\t", dtype={"chrom": str})
        offsets = dict(zip(chroms["chrom"], chroms["offset"].astype(int)))
        n_bases = int(chroms["length"].sum())
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read the dataset in {d} ({exc}); run `seq-unet extract` again") from None
    stored = int(manifest["window_length"]) + 2 * int(manifest.get("max_shift", 0))
    bins = (len(manifest["tracks"]), stored // int(manifest["target_resolution"]))
    if dna.shape != (n_bases,) or tgt.shape[1:] != bins or msk.shape != tgt.shape:
        raise InputError(f"the arrays in {d} do not match its manifest; extract the dataset again")
    return dna, offsets, tgt, msk


class WindowDataset(Dataset):
    """Windows of one split, memory-mapped and one-hot encoded on the fly.

    Each item is a dict:
        ``x``: one-hot DNA, float32 ``(4, length)``;
        ``y``: targets, float32 ``(n_tracks, n_bins)``, normalised with the
        train mean/std when ``mean``/``std`` are given;
        ``mask``: bool ``(n_tracks, n_bins)``;
        ``ends``: bool ``(2,)``: the window's first (last) base is at or past its
        chromosome's start (end), so nothing of the chromosome lies beyond that edge;
        ``index``: the window's row in ``windows.tsv``.
    With ``position_scale``, ``x`` has a fifth channel: ``exp(-distance to the
    nearest chromosome end / position_scale)`` (:mod:`seq_unet.model.inputs`).

    Args:
        split_dir: ``<dataset>/<split>``.
        reverse_complement: with probability 0.5 return the reverse-complement
            window with its targets reversed (training augmentation).
        random_shift: move the window by a random multiple of the target
            resolution within the stored ``max_shift`` flanks (training
            augmentation); otherwise the window is returned as tiled.
    """

    def __init__(self, split_dir: str | os.PathLike, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None, reverse_complement: bool = False, random_shift: bool = False,
                 seed: int = 0, position_scale: float | None = None):
        self.dir = Path(split_dir)
        self.manifest = manifest = load_manifest(self.dir.parent)
        self.length = int(manifest["window_length"])
        self.resolution = int(manifest["target_resolution"])
        self.max_shift = int(manifest.get("max_shift", 0))
        self.random_shift = random_shift and self.max_shift > 0
        self.windows = pd.read_csv(self.dir / "windows.tsv", sep="\t", dtype={"chrom": str})
        self.mean = None if mean is None else np.asarray(mean, np.float32)[:, None]
        self.std = None if std is None else np.asarray(std, np.float32)[:, None]
        self.reverse_complement = reverse_complement
        self.position_scale = position_scale
        self.seed = seed
        self.rank = 0  # the process's rank in a distributed run: each draws its own augmentation
        self._arrays = None
        self._rng = None

    def _open(self):
        if self._arrays is None:  # opened lazily, once per worker process
            self._arrays = open_split(self.dir, self.manifest)
            if len(self._arrays[2]) != len(self.windows):
                raise InputError(f"{self.dir}/windows.tsv does not match its arrays; extract the dataset again")
            # torch seeds each worker afresh every epoch (from the global seed), so
            # augmentation differs between epochs yet is reproducible
            entropy = [self.seed, torch.initial_seed() % 2**32] + ([self.rank] if self.rank else [])
            self._rng = np.random.default_rng(entropy)
        return self._arrays

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        dna, chrom_offset, tgt, msk = self._open()
        offset = self.max_shift
        if self.random_shift:
            k = self.max_shift // self.resolution
            offset += int(self._rng.integers(-k, k + 1)) * self.resolution
        b0, nb = offset // self.resolution, self.length // self.resolution
        row = self.windows.iloc[i]
        start = int(row.start) - self.max_shift + offset  # chromosome coordinate of the first base
        size = int(row.chrom_length)
        first = chrom_offset[row.chrom]
        codes = padded_codes(dna[first : first + size], start, self.length)
        y, m = np.array(tgt[i, :, b0 : b0 + nb]), np.array(msk[i, :, b0 : b0 + nb])
        if self.mean is not None:
            y = (y - self.mean) / self.std
        y = np.where(m, y, 0.0).astype(np.float32)
        ends = np.array([start <= 0, start + self.length >= size])
        flip = self.reverse_complement and self._rng.random() < 0.5
        if flip:
            codes = reverse_complement_codes(codes)
            y, m, ends = y[:, ::-1].copy(), m[:, ::-1].copy(), ends[::-1].copy()
        x = one_hot(codes)
        if self.position_scale:
            pos = position_channel(np.array([start]), self.length, size, self.position_scale)[0]
            x = np.concatenate([x, pos[:, ::-1] if flip else pos])
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(y), "mask": torch.from_numpy(m),
                "ends": torch.from_numpy(ends), "index": i}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = None
        state["_rng"] = None
        return state

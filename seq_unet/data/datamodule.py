"""LightningDataModule over the extracted dataset (train and validation splits).

Test chromosomes are deliberately not exposed here: they are never used for
training, early stopping or model selection; they are scored from the written
bigWigs by ``seq-unet evaluate``.

In a distributed run (Lightning DDP, ``trainer=ddp``) every process reads its
own share of the windows (:class:`RankBatches`): across processes each
training and validation window is used exactly once per epoch, and every
process gets the same number of batches (DDP synchronises every step). Lightning's
own ``DistributedSampler`` instead repeats up to ``world_size - 1`` windows so
that the shares are equal, which would count those windows twice.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Sampler

from seq_unet.data.store import WindowDataset, load_manifest
from seq_unet.errors import InputError


class EpochOrder(Sampler[int]):
    """All indices ``0..n-1``: shuffled anew every epoch (the same order in every process), or in order.

    Lightning calls :meth:`set_epoch` at the start of every training epoch.
    """

    def __init__(self, n: int, shuffle: bool, seed: int = 0):
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())


class RankBatches(Sampler[list[int]]):
    """One process's batches of ``sampler``'s order in a run of ``world_size`` processes.

    The order is cut into ``world_size * k`` consecutive batches of sizes as equal
    as possible, with ``k`` the fewest batches per process that keep every batch
    within ``batch_size`` windows; process ``rank`` takes batches ``rank``,
    ``rank + world_size``, ... So every index is used exactly once, and every
    process runs the same number of steps. Batches may hold fewer than
    ``batch_size`` windows (never more, except with ``batch_size=1`` and a number of
    windows that is no multiple of ``world_size``: then some hold two).
    """

    def __init__(self, sampler: EpochOrder, batch_size: int, rank: int, world_size: int):
        n = len(sampler)
        if n < world_size:
            raise InputError(f"{n} windows cannot be shared among {world_size} processes without repeating some; "
                             "use fewer devices or more windows")
        self.sampler, self.rank, self.world_size = sampler, rank, world_size
        per_rank = math.ceil(n / (world_size * batch_size))
        if per_rank * world_size > n:  # batch_size 1 and n not a multiple of world_size
            per_rank = n // world_size
        self.per_rank = per_rank

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[list[int]]:
        order = np.fromiter(iter(self.sampler), dtype=np.int64, count=len(self.sampler))
        batches = np.array_split(order, self.per_rank * self.world_size)
        for batch in batches[self.rank :: self.world_size]:
            yield batch.tolist()


class WindowDataModule(pl.LightningDataModule):
    """Serve train/val windows of a dataset folder written by ``seq-unet extract``.

    Args:
        dataset_dir: folder holding ``manifest.json`` and one folder per split.
        batch_size: windows per batch.
        num_workers: DataLoader worker processes.
        reverse_complement: reverse-complement augmentation of training windows.
        random_shift: random-shift augmentation of training windows (within the
            dataset's ``max_shift``).
        seed: seed of the augmentation (and of the shuffling in a distributed run).
        shard: in a distributed run, share the windows among the processes with
            :class:`RankBatches` (the trainer must then run with
            ``use_distributed_sampler=False``); False leaves the sharding to Lightning.
        position_scale: add the chromosome-position input channel with this decay length
            (:mod:`seq_unet.model.inputs`); None: DNA only.

    The settings are the configuration's (``train.*``, ``seed``, ``model.position_scale``); they have no
    values of their own here.
    """

    def __init__(self, dataset_dir: str | os.PathLike, *, batch_size: int, num_workers: int,
                 reverse_complement: bool, random_shift: bool, seed: int, shard: bool = True,
                 position_scale: float | None):
        super().__init__()
        self.dataset_dir = str(dataset_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.reverse_complement = reverse_complement
        self.random_shift = random_shift
        self.seed = seed
        self.shard = shard
        self.position_scale = position_scale
        self.manifest = load_manifest(dataset_dir)
        self.manifest["dataset_md5"] = hashlib.md5(
            (Path(dataset_dir) / "manifest.json").read_bytes()).hexdigest()
        tracks = self.manifest["tracks"]
        self.mean = np.array([self.manifest["target_mean"][t] for t in tracks], np.float32)
        self.std = np.array([self.manifest["target_std"][t] for t in tracks], np.float32)

    def _dataset(self, split: str, augment: bool) -> WindowDataset:
        return WindowDataset(os.path.join(self.dataset_dir, split), self.mean, self.std,
                             reverse_complement=augment and self.reverse_complement,
                             random_shift=augment and self.random_shift, seed=self.seed,
                             position_scale=self.position_scale)

    def setup(self, stage: str | None = None) -> None:
        self.train_set = self._dataset("train", True)
        self.val_set = self._dataset("val", False)

    def _loader(self, ds: WindowDataset, shuffle: bool) -> DataLoader:
        rank, world_size = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        if world_size > 1 and self.shard:
            ds.rank = rank  # distinct augmentation draws in every process
            batches = RankBatches(EpochOrder(len(ds), shuffle, self.seed), self.batch_size, rank, world_size)
            return DataLoader(ds, batch_sampler=batches, num_workers=self.num_workers,
                              persistent_workers=self.num_workers > 0, pin_memory=False)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=False, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

"""LightningDataModule over the extracted dataset (train and validation splits).

Test chromosomes are deliberately not exposed here: they are never used for
training, early stopping or model selection; they are scored from the written
bigWigs by ``seq-unet evaluate``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from seq_unet.data.store import WindowDataset, load_manifest


class WindowDataModule(pl.LightningDataModule):
    """Serve train/val windows of a dataset folder written by ``seq-unet extract``.

    Args:
        dataset_dir: folder holding ``manifest.json`` and one folder per split.
        batch_size: windows per batch.
        num_workers: DataLoader worker processes.
        reverse_complement: reverse-complement augmentation of training windows.
        random_shift: random-shift augmentation of training windows (within the
            dataset's ``max_shift``).
        seed: seed of the augmentation.
    """

    def __init__(self, dataset_dir: str | os.PathLike, batch_size: int = 8, num_workers: int = 0,
                 reverse_complement: bool = True, random_shift: bool = True, seed: int = 0):
        super().__init__()
        self.dataset_dir = str(dataset_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.reverse_complement = reverse_complement
        self.random_shift = random_shift
        self.seed = seed
        self.manifest = load_manifest(dataset_dir)
        self.manifest["dataset_md5"] = hashlib.md5(
            (Path(dataset_dir) / "manifest.json").read_bytes()).hexdigest()
        tracks = self.manifest["tracks"]
        self.mean = np.array([self.manifest["target_mean"][t] for t in tracks], np.float32)
        self.std = np.array([self.manifest["target_std"][t] for t in tracks], np.float32)

    def _dataset(self, split: str, augment: bool) -> WindowDataset:
        return WindowDataset(os.path.join(self.dataset_dir, split), self.mean, self.std,
                             reverse_complement=augment and self.reverse_complement,
                             random_shift=augment and self.random_shift, seed=self.seed)

    def setup(self, stage: str | None = None) -> None:
        self.train_set = self._dataset("train", True)
        self.val_set = self._dataset("val", False)

    def _loader(self, ds: WindowDataset, shuffle: bool) -> DataLoader:
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=False, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

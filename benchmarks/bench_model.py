"""Training throughput and peak memory of the U-Net, with and without gradient checkpointing.

    python -m benchmarks.bench_model                      # default model (conf/model/unet.yaml), CPU or GPU
    python -m benchmarks.bench_model --steps 5 model.depth=4 model.base_channels=16

Each setting runs in a fresh process: a few AdamW training steps on random
one-hot windows (the default training window and batch size), the masked
average-pooled MSE loss of training, timed after one warm-up step. Printed per
setting: bases per second (window length x batch x steps / seconds), seconds
per step and peak memory (resident set size on CPU; peak allocated tensor
memory on GPU, where bf16 autocast is used as in training). Then the ratios
with checkpointing to without.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent


def model_config(overrides: list[str]) -> dict:
    cfg = yaml.safe_load((REPO / "conf" / "model" / "unet.yaml").read_text())
    for o in overrides:
        key, _, value = o.partition("=")
        cfg[key.removeprefix("model.")] = yaml.safe_load(value)
    return cfg


def module_settings() -> dict:
    """SeqUNetModule's optimiser and loss settings: the ``train`` section of conf/config.yaml."""
    train = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())["train"]
    return {k: train[k] for k in ("lr", "weight_decay", "warmup_fraction", "loss", "warmup_start_factor",
                                  "min_lr_ratio")}


def training_step(module, opt, batch: dict, autocast) -> None:
    """One optimiser step of the Lightning module's own loss on ``batch``."""
    with autocast:
        loss, _ = module._loss(batch)
    opt.zero_grad(set_to_none=True)
    loss.float().backward()
    opt.step()


def one_setting(args: argparse.Namespace) -> dict:
    import torch

    from seq_unet.io.bases import one_hot
    from seq_unet.lit import SeqUNetModule
    from seq_unet.predict.forward import resolve_device

    cfg = model_config(args.overrides)
    cfg["checkpointing"] = args.checkpointing
    device = resolve_device(args.device)
    torch.manual_seed(0)
    # the LightningModule's own loss: crop to the predicted bins, average-pool, masked MSE
    module = SeqUNetModule(["a", "b"], args.window, args.resolution, [0.0, 0.0], [1.0, 1.0], model=cfg,
                           **module_settings())
    module = module.to(device).train()
    net, length = module.net, args.window
    opt = torch.optim.AdamW(module.parameters(), 1e-3)
    rng = np.random.default_rng(0)
    n_bins = length // args.resolution
    batch = {"x": torch.from_numpy(one_hot(rng.integers(0, 4, (args.batch, length), dtype=np.uint8))).to(device),
             "y": torch.randn(args.batch, 2, n_bins, device=device),
             "mask": torch.ones(args.batch, 2, n_bins, dtype=torch.bool, device=device)}
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))

    def step() -> None:
        training_step(module, opt, batch, autocast)

    step()  # warm-up (allocator, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(),
            "threads": torch.get_num_threads(), "checkpointing": args.checkpointing, "window": length,
            "batch": args.batch, "parameters": sum(p.numel() for p in net.parameters()),
            "seconds_per_step": seconds / args.steps, "bases_per_second": args.steps * args.batch * length / seconds,
            "peak_memory_bytes": peak, "peak_memory_kind": "allocated" if device.type == "cuda" else "max RSS"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3, help="timed training steps per setting")
    p.add_argument("--batch", type=int, default=8, help="windows per step (train.batch_size)")
    p.add_argument("--window", type=int, default=128_000, help="window length in bases (data.window_length)")
    p.add_argument("--resolution", type=int, default=1000, help="target bin size (data.target_resolution)")
    p.add_argument("--device", default="auto")
    p.add_argument("--checkpointing", type=lambda s: s == "true", default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="model options, e.g. model.depth=4")
    args = p.parse_args()
    if args.checkpointing is not None:  # child process: one setting
        print(json.dumps(one_setting(args)))
        return
    results = []
    for ck in ("false", "true"):
        cmd = [sys.executable, "-m", "benchmarks.bench_model", "--checkpointing", ck, "--steps", str(args.steps),
               "--batch", str(args.batch), "--window", str(args.window), "--resolution", str(args.resolution),
               "--device", args.device,
               *args.overrides]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"model: conf/model/unet.yaml {' '.join(args.overrides)}; {results[0]['parameters']:,} parameters; "
          f"window {results[0]['window']} bp x batch {args.batch}; device {results[0]['device']} "
          f"({results[0]['threads']} threads)")
    print(f"{'checkpointing':<14}{'bases/s':>12}{'s/step':>9}{'peak memory':>16}")
    for r in results:
        print(f"{str(r['checkpointing']):<14}{r['bases_per_second']:>12,.0f}{r['seconds_per_step']:>9.2f}"
              f"{r['peak_memory_bytes'] / 2**30:>11.2f} GiB ({r['peak_memory_kind']})")
    off, on = results
    print(f"checkpointing on/off: speed x{on['bases_per_second'] / off['bases_per_second']:.2f}, "
          f"peak memory x{on['peak_memory_bytes'] / off['peak_memory_bytes']:.2f}")
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()

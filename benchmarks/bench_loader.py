"""Data-loader throughput against the training step: can the loader keep the model fed?

    python -m benchmarks.bench_loader                         # results/sacCer3/dataset, training step on CPU
    python -m benchmarks.bench_loader --device cuda           # training step on the GPU
    python -m benchmarks.bench_loader --dataset DIR --workers 0 4 --threads 2 model.depth=4
    python -m benchmarks.bench_loader --batches 20 --repeats 2 --steps 2    # a quick look

The data loader is the train DataLoader of
:class:`seq_unet.data.datamodule.WindowDataModule` as training builds it
(``train.batch_size`` windows per batch, shuffled, random-shift and
reverse-complement augmentation on), with the model replaced by a no-op: each
batch's tensors are touched (one value per 4-KiB page, so every page a worker
handed over is mapped) and dropped. It is timed for each ``num_workers`` in
``--workers`` (default 0, 1, 2 and the configured ``train.num_workers``), after
warm-up batches that include the workers' start, over several blocks of
batches running through as many epochs as needed; the median block is
reported.

The training step is forward + loss + backward + AdamW step of
:class:`seq_unet.lit.SeqUNetModule` with the default model
(``conf/model/unet.yaml`` plus overrides) at the dataset's window length and
target resolution, on a real training batch (copied to the device every step,
as the training loop does), float32 on CPU and bf16 autocast on CUDA as in
training. Each step is timed alone after one warm-up step; the median is
reported.

Printed: windows/s and bases/s (window length x windows / seconds) of each,
and the ratio of loader to training-step windows/s per ``num_workers``; the
loader should be at least 5x faster so that the model never waits for data.
Every setting runs in a fresh process with ``OMP_NUM_THREADS`` and
``torch.set_num_threads`` set to ``--threads`` (DataLoader workers use one
thread each, PyTorch's default). The 1-minute load average is printed after
each setting: other work on the machine lowers both figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.bench_model import model_config, module_settings, training_step

REPO = Path(__file__).resolve().parent.parent

DEFAULT_DATASET = REPO / "results" / "sacCer3" / "dataset"
MIN_RATIO = 5.0


def train_config() -> dict:
    """The ``train`` section of conf/config.yaml (plain values only are used)."""
    return yaml.safe_load((REPO / "conf" / "config.yaml").read_text())["train"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _touch(batch: dict) -> float:
    """Read one value per 4-KiB page of every tensor in the batch (the no-op model)."""
    import torch

    total = 0.0
    for value in batch.values():
        if isinstance(value, torch.Tensor):
            flat = value.reshape(-1)
            total += float(flat[:: max(4096 // flat.element_size(), 1)].float().sum())
    return total


def child_loader(args: argparse.Namespace) -> dict:
    import torch

    from seq_unet.data.datamodule import WindowDataModule

    torch.set_num_threads(args.threads)
    dm = WindowDataModule(args.dataset, batch_size=args.batch, num_workers=args.workers,
                          reverse_complement=True, random_shift=True, seed=0,
                          position_scale=model_config(args.overrides)["position_scale"])
    dm.setup("fit")
    length = int(dm.manifest["window_length"])

    def batches(loader):
        while True:  # epoch after epoch; persistent workers stay up between them
            yield from loader

    it = batches(dm.train_dataloader())
    t0 = time.perf_counter()
    _touch(next(it))
    first_batch = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
        _touch(next(it))
    blocks = []
    for _ in range(args.repeats):
        windows = 0
        t0 = time.perf_counter()
        for _ in range(args.batches):
            batch = next(it)
            _touch(batch)
            windows += len(batch["x"])
        blocks.append(windows / (time.perf_counter() - t0))
    shape = {k: list(v.shape) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    del it  # stop the workers
    rate = _median(blocks)
    return {"num_workers": args.workers, "windows_per_second": rate, "bases_per_second": rate * length,
            "blocks_windows_per_second": blocks, "first_batch_seconds": first_batch, "batch_shapes": shape,
            "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}


def child_train(args: argparse.Namespace) -> dict:
    import torch

    from seq_unet.data.datamodule import WindowDataModule
    from seq_unet.lit import SeqUNetModule
    from seq_unet.predict.forward import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    tcfg = train_config()
    model = model_config(args.overrides)
    dm = WindowDataModule(args.dataset, batch_size=args.batch, num_workers=0,
                          reverse_complement=True, random_shift=True, seed=0, position_scale=model["position_scale"])
    dm.setup("fit")
    m = dm.manifest
    torch.manual_seed(0)
    module = SeqUNetModule(m["tracks"], int(m["window_length"]), int(m["target_resolution"]),
                           [m["target_mean"][t] for t in m["tracks"]], [m["target_std"][t] for t in m["tracks"]],
                           model=model, **module_settings())
    module = module.to(device).train()
    # the optimiser of SeqUNetModule.configure_optimizers (its per-step LR scheduler costs nothing here)
    opt = torch.optim.AdamW(module.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    batch = next(iter(dm.train_dataloader()))
    host = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    windows = len(host["x"])
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        training_step(module, opt, {k: v.to(device) for k, v in host.items()}, autocast)

    step()  # warm-up (allocator, kernels)
    sync()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    seconds = _median(times)
    length = int(m["window_length"])
    return {"device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "device_type": device.type, "threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in module.net.parameters()), "window": length, "batch": windows,
            "seconds_per_step": seconds, "step_seconds": times, "windows_per_second": windows / seconds,
            "bases_per_second": windows * length / seconds, "load_average": os.getloadavg()[0]}


def run_child(args: argparse.Namespace, what: str, extra: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "benchmarks.bench_loader", "--child", what, "--dataset", str(args.dataset),
           "--batch", str(args.batch), "--threads", str(args.threads), "--device", args.device,
           "--batches", str(args.batches),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--steps", str(args.steps),
           *extra, *args.overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    if out.returncode:
        raise SystemExit(f"{what} benchmark failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    tcfg = train_config()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                   help="dataset folder written by `seq-unet extract` (default results/sacCer3/dataset)")
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help="DataLoader num_workers to time (default 0 1 2 and train.num_workers)")
    p.add_argument("--batch", type=int, default=int(tcfg["batch_size"]), help="windows per batch (train.batch_size)")
    p.add_argument("--batches", type=int, default=100, help="loader batches per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed loader blocks (the median is reported)")
    p.add_argument("--warmup", type=int, default=5, help="loader batches before timing (includes worker start)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps (the median is reported)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1),
                   help="OMP_NUM_THREADS and torch.set_num_threads (default $OMP_NUM_THREADS, else all CPUs)")
    p.add_argument("--device", default="cpu", help="device of the training step: cpu, cuda, cuda:1, auto")
    p.add_argument("--child", choices=("loader", "train"), help=argparse.SUPPRESS)
    p.add_argument("--num-workers", type=int, default=0, dest="workers_child", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="model options, e.g. model.depth=4")
    args = p.parse_args()
    if args.child:
        args.workers = args.workers_child
        print(json.dumps(child_loader(args) if args.child == "loader" else child_train(args)))
        return

    manifest_path = args.dataset / "manifest.json"
    if not manifest_path.exists():
        raise SystemExit(f"no dataset at {args.dataset}: run `seq-unet genome`, `seq-unet windows` and "
                         "`seq-unet extract` (or `make demo`), or give --dataset")
    manifest = json.loads(manifest_path.read_text())
    default_workers = int(tcfg["num_workers"])
    workers = sorted(set(args.workers if args.workers is not None else [0, 1, 2, default_workers]))
    length, res = int(manifest["window_length"]), int(manifest["target_resolution"])
    n_train = manifest["splits"]["train"]["windows"]

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    import torch  # only for the version and the GPU's name

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs ({usable} usable), GPU {gpu}; "
          f"Python {platform.python_version()}, torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"threads: OMP_NUM_THREADS={args.threads}, torch.set_num_threads({args.threads}) in each benchmark "
          f"process; DataLoader workers 1 thread each")
    print(f"dataset: {args.dataset}: {n_train} train windows of {length} bp (+/- {manifest.get('max_shift', 0)} bp "
          f"shift flanks), {len(manifest['tracks'])} tracks at {res} bp; batch {args.batch}; "
          f"augmentation on (random shift, reverse complement)")

    loads = []
    print(f"\ndata loader, model replaced by a no-op: median of {args.repeats} x {args.batches} batches "
          f"after {args.warmup} warm-up batches")
    print(f"{'num_workers':<16}{'windows/s':>11}{'bases/s':>14}{'1st batch s':>13}{'blocks (windows/s)':>26}"
          f"{'load':>7}")
    for w in workers:
        r = run_child(args, "loader", ["--num-workers", str(w)])
        loads.append(r)
        label = f"{w} (config)" if w == default_workers else str(w)
        blocks = " ".join(f"{b:.0f}" for b in r["blocks_windows_per_second"])
        print(f"{label:<16}{r['windows_per_second']:>11,.1f}{r['bases_per_second']:>14,.0f}"
              f"{r['first_batch_seconds']:>13.2f}{blocks:>26}{r['load_average']:>7.2f}", flush=True)

    t = run_child(args, "train", [])
    print(f"\ntraining step (forward + loss + backward + AdamW, "
          f"{'bf16 autocast' if t['device_type'] == 'cuda' else 'float32'}): conf/model/unet.yaml "
          f"{' '.join(args.overrides)}{' ' if args.overrides else ''}({t['parameters']:,} parameters), "
          f"{t['window']} bp x batch {t['batch']}, device {t['device']} (threads: {t['threads']}), "
          f"median of {args.steps} steps after 1 warm-up")
    steps = " ".join(f"{s:.2f}" for s in t["step_seconds"])
    print(f"{'windows/s':>11}{'bases/s':>14}{'s/step':>9}   steps (s): {steps}   load {t['load_average']:.2f}")
    print(f"{t['windows_per_second']:>11,.2f}{t['bases_per_second']:>14,.0f}{t['seconds_per_step']:>9.3f}")

    print(f"\nloader / training step on {t['device']} (windows/s; needed: at least {MIN_RATIO:g}x)")
    ratios = {}
    for r in loads:
        ratio = r["windows_per_second"] / t["windows_per_second"]
        ratios[r["num_workers"]] = ratio
        label = f"num_workers {r['num_workers']}" + (" (config)" if r["num_workers"] == default_workers else "")
        print(f"{label:<24}x{ratio:>8.1f}  {'ok' if ratio >= MIN_RATIO else 'TOO SLOW'}")
    print(json.dumps({"loader": loads, "train": t, "ratios": ratios, "threads": args.threads,
                      "dataset": str(args.dataset)}))


if __name__ == "__main__":
    main()

"""How fast a prepared dataset is read at random, per layout, and how much memory a streamed job holds
(docs/benchmarks.md, "Reading a dataset larger than memory").

    python tools/data_bench.py layouts --images 2000      # prepare synthrooms, then random batches per layout
    python tools/data_bench.py stream --train 14000        # an 8 GB prepared synthrooms, one streamed job, its RSS

``layouts`` writes one synthrooms set in four layouts and reads random batches of 64 from each (the image and the
seg, depth and normal targets of each, what a job of those tasks reads; a tar shard holds every target): the prepared
``.npy`` files by positioned reads (mtlbench's streaming path), the same files memory-mapped and fancy-indexed, a
file per image and target (the image a PNG decoded at each read, as original datasets come), and tar shards of 256
images read in
order (WebDataset's layout: random access means reading a shard through). With ``--drop-caches`` (root) the page
cache is dropped before each layout, so the disk is measured, not memory. ``stream`` prepares a set, trains one
epoch of a streamed job on it in a subprocess and reports the job's peak resident set and its largest DataLoader
worker's (``getrusage``), the share of step time spent waiting for batches and the images per second.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def random_batches(count: int, batch: int, batches: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(count, batch, replace=False)) for _ in range(batches)]


READ = ("images", "seg", "depth", "normal")  # what a job of the three NYUv2-like tasks reads


def read_pread(folder: Path, index: np.ndarray) -> None:
    from mtlbench.data.streaming import ArrayFile

    for name in READ:
        ArrayFile.of(folder / f"{name}.npy").read(index)


def read_memmap(folder: Path, index: np.ndarray) -> None:
    for name in READ:
        np.ascontiguousarray(np.load(folder / f"{name}.npy", mmap_mode="r")[index])


def read_png(folder: Path, index: np.ndarray) -> None:
    from PIL import Image

    for i in index:
        np.asarray(Image.open(folder / f"{i:07d}.images.png"))
        for name in READ[1:]:
            np.load(folder / f"{i:07d}.{name}.npy")


def read_tar(folder: Path, index: np.ndarray, shard: int = 256) -> None:
    for s in sorted({int(i) // shard for i in index}):
        with tarfile.open(folder / f"shard-{s:05d}.tar") as archive:
            for member in archive:
                archive.extractfile(member).read()


def write_png(split: Path, out: Path) -> None:
    """One file per image and target: the image as a PNG (decoded at every read, as original datasets come), each
    target as a small ``.npy``."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    arrays = {path.stem: np.load(path, mmap_mode="r") for path in split.glob("*.npy")}
    for i in range(len(arrays["images"])):
        Image.fromarray(np.moveaxis(np.asarray(arrays["images"][i]), 0, -1)).save(out / f"{i:07d}.images.png")
        for name, array in arrays.items():
            if name != "images":
                np.save(out / f"{i:07d}.{name}.npy", np.asarray(array[i]))


def write_tar(split: Path, out: Path, shard: int = 256) -> None:
    out.mkdir(parents=True, exist_ok=True)
    arrays = {path.stem: np.load(path, mmap_mode="r") for path in split.glob("*.npy")}
    count = len(arrays["images"])
    for s in range(0, count, shard):
        with tarfile.open(out / f"shard-{s // shard:05d}.tar", "w") as archive:
            for i in range(s, min(s + shard, count)):
                for name, array in arrays.items():
                    data = io.BytesIO()
                    np.save(data, np.asarray(array[i]))
                    info = tarfile.TarInfo(f"{i:07d}.{name}.npy")
                    info.size = data.tell()
                    data.seek(0)
                    archive.addfile(info, data)


def prepare(folder: Path, height: int, width: int, train: int) -> dict:
    from mtlbench.config import plugin
    from mtlbench.data import DATASETS, prepared

    config = plugin(DATASETS, {"name": "synthrooms", "height": height, "width": width, "train": train, "val": 64,
                               "test": 64}, "dataset", Path("data_bench"))
    start = time.perf_counter()
    manifest = prepared.prepare(config, "-", folder)
    seconds = time.perf_counter() - start
    size = sum(spec["bytes"] for entry in manifest["splits"].values() for spec in entry["arrays"].values())
    return {"config": config, "seconds": seconds, "bytes": size}


def bench_folder(args: argparse.Namespace) -> Path:
    """Where the bench writes, synthrooms' render cache included (deleted with the folder)."""
    root = Path(args.folder or tempfile.mkdtemp(prefix="data_bench-"))
    os.environ["MTLBENCH_CACHE"] = str(root / "cache")
    return root


def layouts(args: argparse.Namespace) -> None:
    root = bench_folder(args)
    made = prepare(root / "npy", args.height, args.width, args.images)
    print(f"prepared {made['bytes'] / 2**30:.2f} GB in {made['seconds']:.1f} s "
          f"({args.images / made['seconds']:.0f} images/s, synthrooms rendered included)")
    write_png(root / "npy" / "train", root / "png")
    write_tar(root / "npy" / "train", root / "tar")
    batches = random_batches(args.images, args.batch, args.batches)
    readers = {"npy, positioned reads (streaming.py)": (read_pread, root / "npy" / "train"),
               "npy, memory map": (read_memmap, root / "npy" / "train"),
               "a file per image and target (PNG image)": (read_png, root / "png"),
               "tar shards of 256, read through": (read_tar, root / "tar")}
    for name, (read, folder) in readers.items():
        cold = args.drop_caches and drop_caches()
        start = time.perf_counter()
        for index in batches:
            read(folder, index)
        rate = len(batches) * args.batch / (time.perf_counter() - start)
        print(f"{name}: {rate:,.0f} images/s ({'cold' if cold else 'warm'} page cache)")


def streamed_job(dataset: dict, root: Path) -> dict:
    """One epoch of Supervised MTL on the prepared set, resolved as a suite resolves it."""
    import yaml

    from mtlbench.config import load_suite

    suite = {"name": "data_bench", "dataset": dataset, "tasks": ["seg", "depth", "normal"], "scenarios": ["full"],
             "methods": ["supervised"], "seeds": [0], "model": {"name": "segnet", "width": 0.125},
             "train": {"epochs": 1, "batch_size": 32, "eval_batch_size": 64, "device": "cpu",
                       "optimizer": {"name": "adam", "lr": 1.0e-3}, "augment": {"scale_crop": False}}}
    path = root / "data_bench.yaml"
    path.write_text(yaml.safe_dump(suite))
    return load_suite(path).jobs[0].config


def stream(args: argparse.Namespace) -> None:
    root = bench_folder(args)
    made = prepare(root / "set", args.height, args.width, args.train)
    print(f"prepared {made['bytes'] / 2**30:.2f} GB in {made['seconds']:.0f} s")
    job = streamed_job(made["config"], root)
    (root / "job").mkdir(exist_ok=True)
    env = {**os.environ, "MTLBENCH_PREPARED": str(root / "set"), "MTLBENCH_STREAM_ABOVE_GB": "0"}
    code = ("import json, resource, sys; from pathlib import Path; from mtlbench.train import run_job; "
            f"r = run_job(json.loads({json.dumps(json.dumps(job))}), Path({str(root / 'job')!r})); "
            "print(json.dumps({'source': r['data_source'], 'costs': r['costs'], "
            "'self_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "'children_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"one epoch streamed from {report['source']} in {time.perf_counter() - start:.0f} s: "
          f"peak RSS of the job {report['self_kb'] / 2**20:.2f} GB, of its largest DataLoader worker "
          f"{report['children_kb'] / 2**20:.2f} GB; data wait {100 * report['costs']['data_wait_share']:.1f}% of "
          f"the step time; {report['costs']['samples_per_second']:.0f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("layouts", "stream"))
    parser.add_argument("--folder", help="where to write (default: a temporary folder; delete it after)")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--images", type=int, default=2000, help="layouts: training images")
    parser.add_argument("--train", type=int, default=14000, help="stream: training images (~0.6 MB each at 128x128)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--drop-caches", action="store_true", help="drop the page cache before each layout (root)")
    args = parser.parse_args()
    {"layouts": layouts, "stream": stream}[args.what](args)


if __name__ == "__main__":
    main()

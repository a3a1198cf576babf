"""What pseudo-labels cost where they are made (docs/benchmarks.md, "What teachers cost").

MuST and Noisy Student label the training split once per job (methods/teachers.py); the alternative is a teacher
forward on every batch in the training loop. At a given scale this times, on random images of the dataset's size,
one teacher forward per image (eval mode, no gradient, one per task: what labelling costs per image) and one
student training step per image (the plain sum's forward, backward and Adam step), and prints what each way costs
a job of N images and E epochs:

    python tools/teacher_cost.py                       # NYUv2 scale: SegNet width 1, 288 x 384, batch 4, 795 images, 300 epochs
    python tools/teacher_cost.py --width 0.125 --height 64 --width-px 96 --batch 8 --images 160 --epochs 6
"""
from __future__ import annotations

import argparse
import time

import torch

from mtlbench.data.synthrooms import SynthRooms
from mtlbench.methods import METHODS, Recipe
from mtlbench.models import MODELS


def seconds(run, repeats: int) -> float:
    run()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0, help="SegNet width")
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width-px", type=int, default=384)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--images", type=int, default=795, help="training images of a job")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    tasks = {k: v for k, v in SynthRooms().tasks().items() if k in ("seg", "depth", "normal")}
    images = torch.rand(args.batch, 3, args.height, args.width_px)
    teachers = [MODELS.get("segnet")(width=args.width).build({name: task}).eval() for name, task in tasks.items()]

    def label() -> None:
        with torch.no_grad():
            for teacher in teachers:
                teacher(images)

    student = MODELS.get("segnet")(width=args.width).build(tasks)
    recipe = Recipe(METHODS.get("supervised"), tasks, student)
    optimizer = torch.optim.Adam(recipe.parameters(), 1e-4)
    targets = {name: task.random_target(args.batch, args.height, args.width_px, torch.Generator().manual_seed(0))
               for name, task in tasks.items()}
    if "seg" in targets:
        targets["seg"] = targets["seg"].long()
    mask = torch.ones(args.batch, len(tasks))

    def step() -> None:
        recipe.train_step(optimizer, images, targets, mask)

    teacher_per_image = seconds(label, args.repeats) / args.batch
    step_per_image = seconds(step, args.repeats) / args.batch
    once = teacher_per_image * args.images
    in_loop = once * args.epochs
    training = step_per_image * args.images * args.epochs
    print(f"{torch.get_num_threads()} threads, SegNet width {args.width}, {args.height}x{args.width_px}, batch {args.batch}")
    print(f"the {len(teachers)} teachers' forwards: {teacher_per_image * 1000:.1f} ms per image; a student step: "
          f"{step_per_image * 1000:.1f} ms per image ({teacher_per_image / step_per_image:.0%} of it)")
    print(f"a job of {args.images} images x {args.epochs} epochs: training {duration(training)}; labelling once "
          f"{duration(once)} ({once / training:.2%} of it); in the loop {duration(in_loop)} (+{in_loop / training:.0%})")


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    main()

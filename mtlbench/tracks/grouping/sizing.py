"""Smaller and larger encoders, and their inference cost in SNT (Standley et al. 2020 Sec. 4.2).

Sec. 4.2: smaller models shrink "the number of channels in every layer of the encoder such that it had the
appropriate number of parameters and flops"; the SNT (standard network time) is one full-size encoder's
inference. Here the encoder is the part of the network the tasks share (SegNet's encoder and decoder; a task
adds only its head), its channels scale with the model's ``width``, and a network of size s gets the largest
width (to 4 decimals) whose shared part needs at most s times the FLOPs of the standard one. Costs are measured
with ``torch.utils.flop_counter`` on the ``meta`` device (shapes only, no compute) at the dataset's input size,
so a network's cost is its measured FLOPs ratio, not the nominal size. The search measures a dozen widths (about
a second per size), so its answers are kept in ``$MTLBENCH_CACHE/sizing.json``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache

import torch

from ...data.synthrooms import cache_dir
from ...files import write_text_atomic
from ...models import MODELS
from ...models.costs import model_cost

WIDTH_STEP = 1e-4


@dataclass(frozen=True)
class Encoder:
    width: float
    flops: int  # one image's inference through the shared part, multiply-adds counted twice
    params: int


@lru_cache(maxsize=None)
def measure(model: str, width: float, height: int, image_width: int) -> Encoder:
    cost = model_cost({"name": model, "width": width}, {}, height, image_width)
    return Encoder(width, 2 * cost.macs, cost.parameters)  # the counter's FLOPs: each multiply-add twice


def width_for(model: dict, size: float, height: int, image_width: int) -> Encoder:
    """The encoder of ``size`` standard networks: the largest width whose FLOPs are at most ``size`` times the
    standard width's. Searched at the model's smallest input (every layer's FLOPs scale with the pixel count),
    measured at the dataset's."""
    if "width" not in model:
        raise ValueError(f"model {model['name']!r} has no 'width' to shrink its encoder by; the grouping track "
                         f"needs one (e.g. segnet)")
    key = json.dumps([torch.__version__, model["name"], model["width"], size, height, image_width])
    path = cache_dir() / "sizing.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    if key not in known:
        known[key] = dataclasses.asdict(search_width(model["name"], model["width"], size, height, image_width))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(known, indent=0))
    return Encoder(**known[key])


def search_width(model: str, standard: float, size: float, height: int, image_width: int) -> Encoder:
    if size == 1:
        return measure(model, standard, height, image_width)
    side = getattr(MODELS.get(model), "input_multiple", 32)
    target = size * measure(model, standard, side, side).flops
    guess = standard * size ** 0.5  # FLOPs grow about as the width squared
    low, high = int(0.7 * guess / WIDTH_STEP), int(1.3 * guess / WIDTH_STEP) + 1
    if measure(model, round(low * WIDTH_STEP, 4), side, side).flops > target:
        low = 1
    while low < high:  # the largest step count whose FLOPs fit: FLOPs never fall as the width grows
        middle = (low + high + 1) // 2
        if measure(model, round(middle * WIDTH_STEP, 4), side, side).flops <= target:
            low = middle
        else:
            high = middle - 1
    return measure(model, round(low * WIDTH_STEP, 4), height, image_width)

"""argparse types shared by the core's commands and those the tracks add (``Track.add_commands``): each names
what it expected, so that a bad value is one line."""
from __future__ import annotations

import argparse
from typing import Callable


def number_list(kind: type) -> Callable[[str], list]:
    """An argparse type: comma-separated numbers of ``kind`` (``1,20``)."""
    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated {kind.__name__}s, e.g. 1,20") \
                from None

    return parse


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value

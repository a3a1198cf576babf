"""Atomic checkpoints: everything an exact resume needs (model, optimiser, scheduler, RNG states, epoch).

A checkpoint carries the version of its layout: a job whose config is unchanged keeps its id across mtlbench
releases, so a run interrupted under an older release meets a checkpoint this one cannot read, and must say so
rather than fail on a missing key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..files import CorruptFile, load_tensors, move_aside, write_atomic

# 2: recipe state became {"nets", "own"} when every recipe axis could own modules
FORMAT = 2


class StaleCheckpoint(RuntimeError):
    pass


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Through a file object, so that a full disk is Python's ENOSPC (files.DiskFull), not torch's "enforce fail"."""
    write_atomic(path, lambda stream: torch.save({**state, "format": FORMAT}, stream))


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (None if there is none). It is loaded with ``weights_only``: one that holds
    other objects is refused (UnsafeFile, naming it); one that cannot be read (a kill while the disk was full,
    a truncated copy) is moved aside with a warning, and the stage starts again from epoch 0."""
    if not path.exists():
        return None
    try:
        state = load_tensors(path, "checkpoint")
    except CorruptFile as error:
        move_aside(path, str(error))
        return None
    if not isinstance(state, dict):
        move_aside(path, f"a checkpoint is a dict, this is a {type(state).__name__}")
        return None
    written = state.get("format", 1)
    if written != FORMAT:
        raise StaleCheckpoint(
            f"{path}: field 'format' is {written}, this mtlbench reads checkpoint format {FORMAT}. The job was "
            f"interrupted under another mtlbench release; delete {path.name} to restart the job from epoch 0 "
            "(its other files are rewritten), or resume it with the release that wrote it.")
    return state


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), **{k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    for name, generator in generators.items():
        generator.set_state(state[name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

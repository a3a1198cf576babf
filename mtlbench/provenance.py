"""Where results came from: the commit of mtlbench's source a job ran at (recorded in its result.json) and what a
leaderboard's footer says of its results (their hardware and commits). Standard library only."""
from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNRECORDED = "unrecorded"  # a result written before 0.4, which recorded no commit


@functools.lru_cache(maxsize=1)
def source_commit() -> str:
    """The short git commit of mtlbench's own source, ``-dirty`` with uncommitted changes (the rendered pages in
    leaderboards/ are no code change), or ``unknown`` for a copy outside a git checkout. Read from the package's
    folder, never the working directory: a command started from another repository names mtlbench's commit."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return "unknown"  # installed into site-packages of some other checkout
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)leaderboards")
        return git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass(frozen=True)
class Provenance:
    """The hardware and mtlbench commits a leaderboard's results ran on, each sorted and without repeats."""

    hardware: tuple[str, ...]
    commits: tuple[str, ...]

    @classmethod
    def of(cls, results: list[dict[str, Any]]) -> Provenance:
        return cls(tuple(sorted({r["device"] for r in results})),
                   tuple(sorted({r.get("commit", UNRECORDED) for r in results})))

    def commit_text(self) -> str:
        return ("commits " if len(self.commits) > 1 else "commit ") + (", ".join(self.commits) or UNRECORDED)

"""Job claims: one runner trains a job, however many runners share the results folder.

Before a job trains, its runner creates ``claim.json`` in the job's folder with ``O_CREAT | O_EXCL`` (atomic:
of two runners exactly one creates it), holding the host, the process id, the start time and a token. While the
job trains, a heartbeat thread touches the file every ``beat`` seconds (its modification time is the
heartbeat). Another runner that finds a claim skips the job and shows it as running elsewhere, unless the claim
is stale: its heartbeat is older than ``stale_after`` seconds, or it was made on this host by a process that is
gone. A stale claim is taken over by renaming it to a unique name (atomic: of two runners exactly one
succeeds) and claiming afresh. The claim is removed when the job ends, finished or failed.

What this assumes of a shared network filesystem (NFSv3 or later, Lustre, GPFS, BeeGFS): exclusive create and
rename are atomic, and modification times come from one clock (the file server's) or from hosts whose clocks
agree to much better than ``stale_after``. Process ids are checked on the claim's own host only; elsewhere
only the heartbeat tells, so a runner killed on another node blocks its job for ``stale_after`` seconds.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CLAIM = "claim.json"
STALE_AFTER = 300.0  # seconds without a heartbeat after which a claim is taken over
BEAT = 30.0  # seconds between heartbeats (well below STALE_AFTER)


@dataclass(frozen=True)
class Claim:
    host: str
    pid: int
    started: str
    token: str

    @staticmethod
    def mine() -> "Claim":
        return Claim(socket.gethostname(), os.getpid(), datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     uuid.uuid4().hex)


def read_claim(path: Path) -> Claim | None:
    """The claim in ``path``, or None if it is missing or not (yet) readable."""
    try:
        return Claim(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def heartbeat_age(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Holder:
    """Who holds a live claim on a job, for progress and ``status``."""

    host: str
    pid: int
    started: str
    heartbeat_age: float

    def describe(self) -> str:
        return f"{self.host} pid {self.pid} since {self.started} (heartbeat {self.heartbeat_age:.0f} s ago)"


class Held:
    """A claim this process holds: its heartbeat runs until ``release``."""

    def __init__(self, path: Path, claim: Claim, beat: float) -> None:
        self.path, self.claim = path, claim
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.beat, args=(beat,), daemon=True, name=f"heartbeat {path.parent}")
        self.thread.start()

    def beat(self, every: float) -> None:
        while not self.stopped.wait(every):
            try:
                os.utime(self.path)
            except FileNotFoundError:  # the folder was deleted or the claim taken over: nothing to refresh
                return

    def release(self) -> None:
        self.stopped.set()
        self.thread.join()
        current = read_claim(self.path)
        if current is not None and current.token == self.claim.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Held":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


@dataclass(frozen=True)
class Claims:
    """How claims are judged: ``stale_after`` and ``beat`` in seconds (runner settings, never part of a job)."""

    stale_after: float = STALE_AFTER
    beat: float = BEAT

    def holder(self, job_dir: Path) -> Holder | None:
        """Who holds a live claim on the job in ``job_dir`` (None: nobody, or only a stale claim)."""
        path = job_dir / CLAIM
        age = heartbeat_age(path)
        if age is None:
            return None
        claim = read_claim(path)
        if claim is None:  # being written this instant, or garbage: judged by its age alone
            return Holder("?", 0, "?", age) if age < self.stale_after else None
        if age >= self.stale_after:
            return None
        if claim.host == socket.gethostname() and not process_alive(claim.pid):
            return None
        return Holder(claim.host, claim.pid, claim.started, age)

    def acquire(self, job_dir: Path) -> Held | None:
        """Claim the job in ``job_dir``; None if another live runner holds it."""
        job_dir.mkdir(parents=True, exist_ok=True)
        path = job_dir / CLAIM
        for _ in range(8):  # each round either claims, finds a live holder, or removes a stale claim
            claim = Claim.mine()
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self.holder(job_dir) is not None:
                    return None
                if not self.take_over(path):
                    return None
                continue
            with os.fdopen(descriptor, "w") as handle:
                handle.write(json.dumps(asdict(claim)))
                handle.flush()
                os.fsync(handle.fileno())
            return Held(path, claim, self.beat)
        return None

    def clear_stale(self, job_dir: Path) -> None:
        """Remove a stale claim from a finished job's folder: a runner killed after it wrote the job's result.json
        and before it released its claim leaves one, and no runner would claim the job again to remove it."""
        path = job_dir / CLAIM
        if path.exists() and self.holder(job_dir) is None:
            self.take_over(path)

    def take_over(self, path: Path) -> bool:
        """Remove the stale claim at ``path``; False if a live claim replaced it meanwhile (it is put back)."""
        stale = read_claim(path)
        aside = path.with_name(f"{CLAIM}.stale-{uuid.uuid4().hex}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:  # another runner removed it first: try to claim again
            return True
        moved = read_claim(aside)
        if stale is not None and moved is not None and moved.token != stale.token:
            try:  # we moved a fresh claim made after we judged the old one stale: give it back
                os.link(aside, path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

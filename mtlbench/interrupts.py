"""How mtlbench processes stop: SIGTERM raised as ``Terminated`` (a KeyboardInterrupt, so that it unwinds as
cleanly as Ctrl-C) and the exit code each stop reports. Standard library only: the command line handles an
interrupt from its first moment, before torch is imported."""
from __future__ import annotations

import signal
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it stops as cleanly as on Ctrl-C (exit 143)."""


def stop_on_sigterm() -> None:
    """Turn SIGTERM into ``Terminated`` in this process (the main thread)."""
    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


def exit_code_of(error: BaseException) -> int:
    """The exit code a stopped run reports: 143 for SIGTERM, 130 for Ctrl-C, 1 for anything else."""
    return 143 if isinstance(error, Terminated) else 130 if isinstance(error, KeyboardInterrupt) else 1

"""How mtlbench processes stop: SIGTERM raised as ``Terminated`` (a KeyboardInterrupt, so that it unwinds as
cleanly as Ctrl-C) and the exit code each stop reports. Standard library only: the command line handles an
interrupt from its first moment, before torch is imported."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it stops as cleanly as on Ctrl-C (exit 143)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated``; on leaving it the previous handler is back, so that a
    process which calls mtlbench as a library (pytest, a notebook) still dies on SIGTERM afterwards. Outside the
    main thread, where Python allows no handler, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code_of(error: BaseException) -> int:
    """The exit code a stopped run reports: 143 for SIGTERM, 130 for Ctrl-C, 1 for anything else."""
    return 143 if isinstance(error, Terminated) else 130 if isinstance(error, KeyboardInterrupt) else 1

"""How mtlbench processes stop: SIGTERM raised as ``Terminated`` (a KeyboardInterrupt, so that it unwinds as
cleanly as Ctrl-C), the stop remembered even where a C extension turns it into an ordinary error, and the exit
code each stop reports. Standard library only: the command line handles an interrupt from its first moment,
before torch is imported."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it stops as cleanly as on Ctrl-C (exit 143)."""


_requested: type[KeyboardInterrupt] | None = None  # the stop a signal asked for in the current block


def _stop_with(kind: type[KeyboardInterrupt]) -> Callable[[int, Any], None]:
    def stop(signum: int, frame: Any) -> None:
        global _requested
        _requested = kind
        raise kind()

    return stop


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` and Ctrl-C (where Python's own handler has it) raises
    KeyboardInterrupt, both remembered for ``interrupt_behind``; on leaving it the previous handlers are back, so
    that a process which calls mtlbench as a library (pytest, a notebook) still dies on SIGTERM afterwards.
    Outside the main thread, where Python allows no handler, the block runs as it is."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested = None
    previous = signal.signal(signal.SIGTERM, _stop_with(Terminated))
    python_handles_ctrl_c = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if python_handles_ctrl_c:
        signal.signal(signal.SIGINT, _stop_with(KeyboardInterrupt))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if python_handles_ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        _requested = None


def interrupt_behind(error: BaseException) -> BaseException:
    """The interrupt a signal raised within ``sigterm_as_interrupt`` if ``error`` is what a C extension made of it,
    else ``error``. torch.save calls a file's ``write`` from C++ and reports an exception raised there as a
    RuntimeError: a SIGTERM landing mid-checkpoint would otherwise count the job as failed, and the worker would
    go on to the next job instead of stopping."""
    if _requested is None or isinstance(error, KeyboardInterrupt):
        return error
    return _requested()


def exit_code_of(error: BaseException) -> int:
    """The exit code a stopped run reports: 143 for SIGTERM, 130 for Ctrl-C, 1 for anything else."""
    return 143 if isinstance(error, Terminated) else 130 if isinstance(error, KeyboardInterrupt) else 1

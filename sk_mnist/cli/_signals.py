"""Ctrl-C and SIGTERM in the command line: an exit status, never a traceback.

Ctrl-C raises ``KeyboardInterrupt`` as usual (during a fit, the engine's own
handler stops training at the next batch instead). SIGTERM, which Python
would otherwise obey by dying on the spot, is turned into a Ctrl-C, so that
a process manager stopping the command gets the same clean stop: training
ends at a batch boundary, temporary outputs are removed, and the exit status
says which signal came (130 for SIGINT, 143 for SIGTERM, as shells report).

Every signal is also recorded: a ``KeyboardInterrupt`` raised where Python
cannot deliver it (inside a garbage-collection callback, as JAX has) is
swallowed by the interpreter, and the record still makes the command exit
as interrupted. The interpreter would also print that swallowed interrupt
with its traceback ("Exception ignored in: <function _xla_gc_callback>"):
for the block, :data:`sys.unraisablehook` leaves out a ``KeyboardInterrupt``
of a recorded signal and passes everything else on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
_received: list[int] = []


@contextlib.contextmanager
def handling():
    """SIGINT and SIGTERM handled as this module says, for the block.

    Outside the main thread (where Python runs no signal handler), nothing
    changes. The previous handlers come back when the block ends.
    """
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, _on_sigint),
        signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm),
    }
    hook = sys.unraisablehook

    def quiet_about_recorded_interrupts(unraisable):
        if not (_received and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            hook(unraisable)

    sys.unraisablehook = quiet_about_recorded_interrupts
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def received() -> int | None:
    """The first signal received (SIGTERM before SIGINT), or None."""
    if signal.SIGTERM in _received:
        return signal.SIGTERM
    return _received[0] if _received else None


def exit_status(default: int = 130) -> int:
    """The exit status for the signal received: 143 after SIGTERM, else 130."""
    return EXIT_STATUS.get(received(), default)


@contextlib.contextmanager
def deferred():
    """Hold SIGINT and SIGTERM back for a short block (moving outputs in place).

    The signals stay pending and are delivered when the block ends, so the
    block runs whole: a set of files is either all moved or not at all.
    """
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _on_sigint(signum, frame):
    _received.append(signum)
    raise KeyboardInterrupt


def _on_sigterm(signum, frame):
    _received.append(signum)
    # Delivered as a Ctrl-C to whoever handles SIGINT now: this module's
    # handler, or the training loop's, which stops at the next batch.
    os.kill(os.getpid(), signal.SIGINT)

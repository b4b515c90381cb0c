"""The clock behind time limits, for engines that stop Wasm at an epoch deadline.

A daemon thread advances the engine's epoch every tick; a call whose deadline (its timeout in
ticks) passes is stopped by the engine. Ctrl-C would otherwise wait for that: while Wasm runs
in the main thread, Python cannot run its signal handler. So the ticker also listens on the
interpreter's signal wakeup descriptor (when nobody else uses it) and, on SIGINT, advances
the epoch far enough to stop every running call at once; Python then raises
KeyboardInterrupt as the call returns.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable

TICK_SECONDS = 0.05


def start(advance: Callable[[], None], longest_deadline: Callable[[], int]) -> None:
    """Advance an engine's epoch forever, in a daemon thread; see the module docstring.

    ``longest_deadline()`` is the most ticks any call may be given: on Ctrl-C the epoch is
    advanced that far.
    """
    threading.Thread(target=_run, args=(advance, longest_deadline, _listen_for_interrupts()),
                     daemon=True, name="chonkle-epoch").start()


def _listen_for_interrupts() -> int | None:
    """The read end of a pipe Python writes signal numbers to, or None when the wakeup
    descriptor belongs to someone else (asyncio) or this is not the main thread."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(os, "pipe"):
        return None
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except ValueError:
        previous = -2
    if previous != -1:  # taken: give it back and do without
        with contextlib.suppress(ValueError):
            if previous >= 0:
                signal.set_wakeup_fd(previous)
        os.close(read), os.close(write)
        return None
    return read


def _run(advance: Callable[[], None], longest_deadline: Callable[[], int],
         interrupts: int | None) -> None:
    pause = threading.Event()
    while True:
        if interrupts is None:
            pause.wait(TICK_SECONDS)
        elif (select.select([interrupts], [], [], TICK_SECONDS)[0]
              and signal.SIGINT in os.read(interrupts, 64)):
            for _ in range(longest_deadline()):
                advance()
        advance()

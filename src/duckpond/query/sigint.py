"""Ctrl-C stops a running query at once (`pond sql`, its shell).

DuckDB checks for a pending SIGINT in some operators but not all: a `count(*)` over a huge
`range` or a long scan can run on, the KeyboardInterrupt waiting for it to finish. While a
query runs, `interrupt_on_sigint` has the C-level signal handler write to a pipe
(`signal.set_wakeup_fd`) that a helper thread reads; on SIGINT it calls the connection's
`interrupt()`, DuckDB's thread-safe way to stop a query (as the time limit does, sql.py),
and the query ends with the KeyboardInterrupt it already raises for an interrupt. Only in
the main thread (the only one signals reach), and opt-in: the wakeup fd is process-wide
state (an asyncio loop uses it too), so a library call leaves it alone unless asked.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Interruptible(Protocol):
    def interrupt(self) -> None: ...


def _relay(read_fd: int, con: Interruptible) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:  # the write end closed: the query is over
            return
        if signal.SIGINT in data:
            con.interrupt()


@contextmanager
def interrupt_on_sigint(con: Interruptible, enabled: bool = True) -> Iterator[None]:
    """While the block runs, a SIGINT interrupts `con`'s query (see the module docstring);
    a no-op when not `enabled`, outside the main thread or with SIGINT ignored."""
    if (
        not enabled
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None)
    ):
        yield
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the handler never blocks on a full pipe
    previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    relay = threading.Thread(target=_relay, args=(read_fd, con), name="pond-sigint-relay")
    relay.daemon = True
    relay.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write_fd)
        relay.join()
        os.close(read_fd)

"""A worker thread fed through a drop-oldest queue of one, so callbacks only enqueue.

Subscription callbacks must return at once: a callback that preprocesses a full LiDAR scan or runs the
model holds an executor thread, and /clock, the other sensors and the timers wait behind it. The nodes
hand each message (or sample set) to a `Worker` instead. When the worker is still busy with the previous
item, the newest replaces any item still waiting (the freshest data wins; the replaced one is counted),
so nothing queues up and latency stays bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Worker(Generic[T]):
    """Calls ``handle(item)`` on its own thread for the newest item put to it."""

    def __init__(
        self, name: str, handle: Callable[[T], None], on_error: Callable[[BaseException], None]
    ) -> None:
        self._handle = handle
        self._on_error = on_error
        self._cond = threading.Condition()
        self._item: T | None = None
        self._stopping = False
        self.dropped = 0  # items replaced before the worker took them
        self.busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> bool:
        """Queue ``item``; returns True when it replaced one the worker had not taken yet."""
        with self._cond:
            replaced = self._item is not None
            self.dropped += replaced
            self._item = item
            self._cond.notify()
            return replaced

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the current item finish, drop any waiting one, and end the thread."""
        with self._cond:
            self._stopping = True
            self._item = None
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._item is not None or self._stopping)
                if self._stopping:
                    return
                item, self._item = self._item, None
                self.busy = True
            try:
                self._handle(item)
            except Exception as exc:  # the node stays up; the error is reported by on_error
                self._on_error(exc)
            finally:
                self.busy = False

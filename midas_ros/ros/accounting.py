"""Where every input message went: received, processed, rejected by reason, dropped because busy, or lost
before the callback ever saw it.

A best-effort, keep-last subscription silently drops frames while the process is busy. Publishers
number their messages (rclpy's ``MessageInfo`` ``publication_sequence_number``, per publisher GID), so a
gap in those numbers is a message that was sent to this subscription and never reached it. With these
counters ``sent = lost + received`` and ``received = processed + rejected + dropped_busy (+ in flight)``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AccountingSnapshot:
    """The counters at one moment."""

    received: int
    processed: int
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    dropped_busy: int = 0
    lost: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_values(self) -> dict[str, int]:
        """Flat {key: count} for a DiagnosticStatus (rejected/<reason> per reason)."""
        return {
            "received": self.received,
            "processed": self.processed,
            "rejected": self.rejected_total,
            **{f"rejected/{reason}": n for reason, n in sorted(self.rejected.items())},
            "dropped_busy": self.dropped_busy,
            "lost_before_callback": self.lost,
        }


class InputAccounting:
    """Thread-safe counters of one input topic (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received = 0
        self._processed = 0
        self._rejected: Counter[str] = Counter()
        self._dropped_busy = 0
        self._lost = 0
        self._last_sequence: dict[bytes, int] = {}

    def received(self, info: Mapping[str, Any] | None = None) -> None:
        """A message reached the callback; ``info`` is rclpy's MessageInfo, when the callback got it."""
        sequence = None if info is None else info.get("publication_sequence_number")
        gid = (info or {}).get("publisher_gid") or {}
        publisher = bytes(gid.get("data", b""))
        with self._lock:
            self._received += 1
            if sequence is None:  # this RMW does not number messages
                return
            last = self._last_sequence.get(publisher)
            if last is not None and sequence > last + 1:
                self._lost += sequence - last - 1
            # A lower number means the publisher started over (a restarted driver keeps its GID rarely).
            self._last_sequence[publisher] = sequence

    def processed(self) -> None:
        with self._lock:
            self._processed += 1

    def rejected(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] += 1

    def dropped_busy(self, count: int = 1) -> None:
        with self._lock:
            self._dropped_busy += count

    def snapshot(self) -> AccountingSnapshot:
        with self._lock:
            return AccountingSnapshot(
                self._received, self._processed, dict(self._rejected), self._dropped_busy, self._lost
            )

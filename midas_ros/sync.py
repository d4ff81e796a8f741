"""Staleness-aware grouping of per-sensor samples into sample sets (no ROS import).

message_filters' ApproximateTimeSynchronizer emits nothing while any input is silent, so one dead sensor
stops the whole pipeline. MIDAS is built to run on whatever subset of sensors is alive, so this module
forms a set on every trigger and marks silent sensors as missing instead of waiting for them.

Usage (a fusion node)::

    sync = StalenessSynchronizer({"depth": ModalityConfig(timeout_s=0.5, tolerance_s=0.1),
                                  "lidar": ModalityConfig(), "csi": ModalityConfig()})
    # subscription callbacks (any thread):
    sync.add("depth", stamp_ns, sample)          # stamp: int nanoseconds or float seconds
    # timer on the node's clock (use_sim_time aware), e.g. 10 Hz:
    sample_set = sync.poll(node.get_clock().now().nanoseconds)
    if sample_set is not None:
        pose = predictor.predict(sample_set.samples)       # only the present modalities
        sample_set.present(MODALITIES)                      # (bool, ...) in a given order
        sample_set.missing                                  # {"csi": "stale", ...}
    sync.stats()                                            # {modality: ModalityStats} for diagnostics

Alternatively pass ``trigger="depth"``: then ``add("depth", ...)`` itself returns the set stamped with that
sample (``poll`` still works). A set is formed like this:

- ``poll(now)``: the set's stamp is the newest stamp among the modalities that are alive at ``now``;
  with a trigger modality it is the trigger sample's stamp.
- A modality is *stale* when its newest sample is older than its own ``timeout_s`` relative to ``now`` (or
  to the set stamp in trigger mode, when no ``now`` is given); stale and never-heard modalities are missing.
- Every other modality contributes its buffered sample nearest to the set stamp, if within its
  ``tolerance_s``; otherwise it is missing ("out_of_tolerance"). A sample may serve several sets.
- ``poll`` returns ``None`` when no modality is present or nothing new arrived since the last set (the
  set stamp did not advance), so a fusion node never runs twice on the same data.
- With ``max_wait_s > 0``, ``poll`` holds a set back while an *alive* modality has no sample within its
  tolerance of the set stamp yet and the set stamp is less than ``max_wait_s`` old (sensors are not
  triggered together: the matching sample may be in flight). Dead sensors are never waited for.

Buffers are ordered by stamp, so out-of-order arrivals are placed correctly; a repeated stamp of one
modality is ignored (counted in ``duplicates``). A stamp more than ``jump_back_s`` older than the newest
one of its modality (or a ``now`` older than the newest ``now``) means time went backwards (a bag
looping, a sensor restarting): all buffers are cleared and synchronisation starts over.
All methods are thread-safe (one lock; no callback runs under it).
"""

from __future__ import annotations

import bisect
import numbers
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NS_PER_S = 1_000_000_000
_NOW_KEY = "\0now"  # jump-detection key of poll times; cannot clash with a modality name


def to_ns(stamp: float | int) -> int:
    """A stamp as integer nanoseconds: ints are taken as nanoseconds, floats as seconds."""
    if isinstance(stamp, bool):
        raise TypeError("a stamp must be int nanoseconds or float seconds, not bool")
    if isinstance(stamp, numbers.Integral):  # int, numpy integers
        return int(stamp)
    return round(float(stamp) * NS_PER_S)


@dataclass(frozen=True)
class ModalityConfig:
    """Per-modality settings: staleness timeout and the largest stamp offset allowed in a set."""

    timeout_s: float = 0.5
    tolerance_s: float = 0.1
    buffer_size: int = 30

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.tolerance_s < 0 or self.buffer_size < 1:
            raise ValueError(
                f"invalid ModalityConfig {self}: need timeout_s > 0, tolerance_s >= 0, buffer_size >= 1"
            )


@dataclass(frozen=True)
class SampleSet:
    """One synchronised set: the present modalities' samples and why the others are missing."""

    stamp_ns: int
    samples: dict[str, Any]
    stamps_ns: dict[str, int]
    missing: dict[str, str]  # modality -> "never_received" | "stale" | "out_of_tolerance"

    @property
    def stamp(self) -> float:
        """The set's stamp in seconds."""
        return self.stamp_ns / NS_PER_S

    def present(self, order: Iterable[str]) -> tuple[bool, ...]:
        """Presence flags in the given modality order (e.g. ``midas_ros.MODALITIES``)."""
        return tuple(m in self.samples for m in order)


@dataclass
class ModalityStats:
    """Counters for diagnostics; ages and rates in seconds / hertz, ``None`` until known."""

    received: int = 0
    duplicates: int = 0
    used_sets: int = 0
    missing_sets: int = 0
    last_age_s: float | None = None
    rate_hz: float | None = None
    alive: bool = False


@dataclass
class _Buffer:
    stamps: list[int] = field(default_factory=list)
    payloads: list[Any] = field(default_factory=list)
    stats: ModalityStats = field(default_factory=ModalityStats)

    def clear(self) -> None:
        self.stamps.clear()
        self.payloads.clear()


class StalenessSynchronizer:
    """Groups stamped samples of several modalities into sets without ever waiting on a dead sensor."""

    def __init__(
        self,
        modalities: Mapping[str, ModalityConfig] | Iterable[str],
        *,
        trigger: str | None = None,
        jump_back_s: float = 1.0,
        max_wait_s: float = 0.0,
    ) -> None:
        if not isinstance(modalities, Mapping):
            modalities = {m: ModalityConfig() for m in modalities}
        if not modalities:
            raise ValueError("at least one modality is needed")
        if trigger is not None and trigger not in modalities:
            raise ValueError(f"trigger {trigger!r} is not one of the modalities {list(modalities)}")
        self._configs: dict[str, ModalityConfig] = dict(modalities)
        self._trigger = trigger
        self._jump_back_ns = to_ns(float(jump_back_s))
        self._max_wait_ns = to_ns(float(max_wait_s))
        self._lock = threading.Lock()
        self._buffers = {m: _Buffer() for m in self._configs}
        # Newest stamp per modality and newest poll time since the last reset, tracked apart so that a
        # lagging sensor, or a sensor clock ahead of the node's clock, is not mistaken for a jump back.
        self._newest_ns: dict[str, int] = {}
        self._last_set_ns: int | None = None
        self.resets = 0

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self._configs)

    def add(
        self, modality: str, stamp: float | int, payload: Any, now: float | int | None = None
    ) -> SampleSet | None:
        """Buffer one sample; returns a set when ``modality`` is the trigger modality, else ``None``."""
        if modality not in self._buffers:
            raise KeyError(f"unknown modality {modality!r}; configured: {list(self._configs)}")
        stamp_ns = to_ns(stamp)
        with self._lock:
            self._check_jump(modality, stamp_ns)
            buf = self._buffers[modality]
            i = bisect.bisect_left(buf.stamps, stamp_ns)
            if i < len(buf.stamps) and buf.stamps[i] == stamp_ns:
                buf.stats.duplicates += 1
                return None
            buf.stamps.insert(i, stamp_ns)
            buf.payloads.insert(i, payload)
            buf.stats.received += 1
            self._prune(modality)
            if modality != self._trigger:
                return None
            now_ns = stamp_ns if now is None else max(to_ns(now), stamp_ns)
            return self._form_set(now_ns, stamp_ns)

    def poll(self, now: float | int) -> SampleSet | None:
        """Form a set at time ``now`` (the node's clock); ``None`` when there is nothing new to fuse."""
        now_ns = to_ns(now)
        with self._lock:
            self._check_jump(_NOW_KEY, now_ns)
            alive_newest = [
                buf.stamps[-1] for m, buf in self._buffers.items() if buf.stamps and self._is_alive(m, now_ns)
            ]
            if not alive_newest:
                self._update_stats(now_ns)
                return None
            set_ns = max(alive_newest)
            if self._last_set_ns is not None and set_ns <= self._last_set_ns:
                self._update_stats(now_ns)
                return None
            if now_ns - set_ns < self._max_wait_ns and not self._all_alive_match(now_ns, set_ns):
                self._update_stats(now_ns)
                return None
            return self._form_set(now_ns, set_ns)

    def stats(self) -> dict[str, ModalityStats]:
        """A copy of each modality's counters."""
        with self._lock:
            return {m: ModalityStats(**vars(buf.stats)) for m, buf in self._buffers.items()}

    def reset(self) -> None:
        """Clear all buffers (counters are kept)."""
        with self._lock:
            self._reset()

    # -- internals; the lock is held by the caller ------------------------------------------------------

    def _reset(self) -> None:
        for buf in self._buffers.values():
            buf.clear()
        self._newest_ns.clear()
        self._last_set_ns = None
        self.resets += 1

    def _check_jump(self, key: str, t_ns: int) -> None:
        """``key``: a modality for sample stamps, ``_NOW_KEY`` for poll times."""
        newest = self._newest_ns.get(key)
        if newest is not None and t_ns < newest - self._jump_back_ns:
            self._reset()
            newest = None
        if newest is None or t_ns > newest:
            self._newest_ns[key] = t_ns

    def _prune(self, modality: str) -> None:
        # Keep what a set could still use: samples within timeout + tolerance of the newest one.
        cfg, buf = self._configs[modality], self._buffers[modality]
        horizon = buf.stamps[-1] - to_ns(cfg.timeout_s + cfg.tolerance_s)
        drop = max(bisect.bisect_left(buf.stamps, horizon), len(buf.stamps) - cfg.buffer_size)
        if drop > 0:
            del buf.stamps[:drop]
            del buf.payloads[:drop]

    def _is_alive(self, modality: str, now_ns: int) -> bool:
        buf = self._buffers[modality]
        return bool(buf.stamps) and now_ns - buf.stamps[-1] <= to_ns(self._configs[modality].timeout_s)

    def _nearest(self, modality: str, set_ns: int) -> int | None:
        """Index of the modality's buffered sample nearest to ``set_ns`` within tolerance, else None."""
        buf = self._buffers[modality]
        i = bisect.bisect_left(buf.stamps, set_ns)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(buf.stamps)]
        if not candidates:
            return None
        j = min(candidates, key=lambda k: abs(buf.stamps[k] - set_ns))
        return j if abs(buf.stamps[j] - set_ns) <= to_ns(self._configs[modality].tolerance_s) else None

    def _all_alive_match(self, now_ns: int, set_ns: int) -> bool:
        return all(self._nearest(m, set_ns) is not None for m in self._buffers if self._is_alive(m, now_ns))

    def _update_stats(self, now_ns: int) -> None:
        for m, buf in self._buffers.items():
            st = buf.stats
            st.alive = self._is_alive(m, now_ns)
            st.last_age_s = (now_ns - buf.stamps[-1]) / NS_PER_S if buf.stamps else None
            span = buf.stamps[-1] - buf.stamps[0] if len(buf.stamps) >= 2 else 0
            st.rate_hz = (len(buf.stamps) - 1) * NS_PER_S / span if span > 0 else None

    def _form_set(self, now_ns: int, set_ns: int) -> SampleSet | None:
        self._update_stats(now_ns)
        samples: dict[str, Any] = {}
        stamps: dict[str, int] = {}
        missing: dict[str, str] = {}
        for m, buf in self._buffers.items():
            if not buf.stamps:
                missing[m] = "never_received" if buf.stats.received == 0 else "stale"
                continue
            if not buf.stats.alive:
                missing[m] = "stale"
                continue
            j = self._nearest(m, set_ns)
            if j is None:
                missing[m] = "out_of_tolerance"
                continue
            samples[m] = buf.payloads[j]
            stamps[m] = buf.stamps[j]
        if not samples:
            return None
        for m, buf in self._buffers.items():
            if m in samples:
                buf.stats.used_sets += 1
            else:
                buf.stats.missing_sets += 1
        self._last_set_ns = set_ns
        return SampleSet(stamp_ns=set_ns, samples=samples, stamps_ns=stamps, missing=missing)

"""Grouping of per-sensor samples into sample sets that never waits on a dead or lagging sensor (no ROS).

message_filters' ApproximateTimeSynchronizer emits nothing while any input is silent, so one dead sensor
stops the whole pipeline. MIDAS runs on whatever subset of sensors is alive, so this module forms a set
from what has arrived and says why each missing sensor is missing.

Two clocks are involved, and they are kept apart:

- a sample's **stamp** (its header stamp: when the sensor saw the scene) decides which samples belong
  together: a set takes, from each sensor, its sample nearest to the set's stamp within the sensor's
  ``tolerance_s``;
- its **arrival** (when the node received it, on the node's clock, which follows /clock under sim time)
  decides liveness and waiting: a sensor is *alive* while it delivered within its ``timeout_s``, and a
  set waits at most ``max_latency_s`` after its first sample arrived.

So a sensor whose stamps run behind the clock (a driver restarted, a sensor stamping from its own clock,
a looped bag under a live clock) stays alive, and replay at any rate behaves the same.

How a set is formed (all of it deterministic for a given sequence of calls, so an offline replay that
feeds bag log times as arrivals gets the sets a live node gets):

- ``add(modality, stamp, payload, arrival)`` places a sample: it joins the open set whose stamp is
  within its tolerance (and has no closer sample of that sensor), or, when it is newer than every set
  formed so far, opens a new set stamped with its stamp. A sample whose set was already formed is *late*.
- An open set is formed (returned, oldest first) as soon as every alive, punctual sensor has a sample
  for it, or when ``max_latency_s`` has passed since it opened (``poll(now)`` checks deadlines; call it
  from a timer). A sensor whose last sample arrived more than ``max_latency_s`` after its set opened is
  *late*: sets stop waiting for it, so the others' output is not delayed, and it is never called dead.
  With ``max_latency_s`` at or above a sensor's lag, that sensor is waited for and fused.
- Missing sensors get a reason: ``never_received``, ``dead`` (alive no more), ``late`` or
  ``out_of_tolerance`` (alive and punctual, but no sample near this set's stamp).
- Time going backwards resets cleanly: a sensor's stamps jumping back more than ``jump_back_s`` drop its
  buffered samples; when every live sensor has left the old time line, the set time line starts over;
  the clock (arrivals, ``now``) jumping back does both, keeping each sensor's liveness.

Sample sets are formed in stamp order, each at most once. All methods are thread-safe (one lock).
"""

from __future__ import annotations

import bisect
import itertools
import numbers
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NS_PER_S = 1_000_000_000
_EMITTED_HISTORY = 64  # formed sets remembered to measure how late a late sample was


def to_ns(stamp: float | int) -> int:
    """A time as integer nanoseconds: ints are taken as nanoseconds, floats as seconds."""
    if isinstance(stamp, bool):
        raise TypeError("a time must be int nanoseconds or float seconds, not bool")
    if isinstance(stamp, numbers.Integral):  # int, numpy integers
        return int(stamp)
    return round(float(stamp) * NS_PER_S)


@dataclass(frozen=True)
class ModalityConfig:
    """Per-sensor settings: liveness timeout (by arrival), and the largest stamp offset within a set."""

    timeout_s: float = 0.5
    tolerance_s: float = 0.05
    buffer_size: int = 64

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.tolerance_s < 0 or self.buffer_size < 1:
            raise ValueError(
                f"invalid ModalityConfig {self}: need timeout_s > 0, tolerance_s >= 0, buffer_size >= 1"
            )


@dataclass(frozen=True)
class SampleSet:
    """One synchronised set: the present sensors' samples and why the others are missing."""

    stamp_ns: int
    samples: dict[str, Any]
    stamps_ns: dict[str, int]
    missing: dict[str, str]  # modality -> "never_received" | "dead" | "late" | "out_of_tolerance"
    opened_ns: int  # arrival of its first sample (node clock)
    formed_ns: int  # when it was formed (node clock)

    @property
    def stamp(self) -> float:
        """The set's stamp in seconds."""
        return self.stamp_ns / NS_PER_S

    @property
    def wait_s(self) -> float:
        """How long the set waited for its sensors after its first sample arrived."""
        return (self.formed_ns - self.opened_ns) / NS_PER_S

    def present(self, order: Iterable[str]) -> tuple[bool, ...]:
        """Presence flags in the given modality order (e.g. ``midas_ros.MODALITIES``)."""
        return tuple(m in self.samples for m in order)


@dataclass
class ModalityStats:
    """A sensor's state and counters for diagnostics; times in seconds, ``None`` until known."""

    state: str = "never_received"  # "ok" | "late" | "dead" | "never_received"
    received: int = 0
    duplicates: int = 0
    late_samples: int = 0  # arrived after the set they belonged to was formed
    used_sets: int = 0
    missing_sets: int = 0
    age_s: float | None = None  # since the last arrival
    delay_s: float | None = None  # last sample's arrival after its set opened (None: behind every set)
    rate_hz: float | None = None  # from the stamps of the buffered samples

    @property
    def alive(self) -> bool:
        return self.state in ("ok", "late")


@dataclass
class _Sensor:
    config: ModalityConfig
    stamps: list[int] = field(default_factory=list)  # buffered samples, ordered by stamp
    payloads: list[Any] = field(default_factory=list)
    last_arrival_ns: int | None = None
    delay_ns: int | None = None
    late: bool = False
    stats: ModalityStats = field(default_factory=ModalityStats)

    @property
    def newest_stamp_ns(self) -> int | None:
        """The newest buffered stamp: the sensor's current time line (jump detection)."""
        return self.stamps[-1] if self.stamps else None

    def nearest(self, stamp_ns: int) -> int | None:
        """Index of the buffered sample nearest to ``stamp_ns`` within tolerance, else None."""
        i = bisect.bisect_left(self.stamps, stamp_ns)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self.stamps)]
        if not candidates:
            return None
        j = min(candidates, key=lambda k: abs(self.stamps[k] - stamp_ns))
        return j if abs(self.stamps[j] - stamp_ns) <= to_ns(self.config.tolerance_s) else None

    def period_ns(self) -> int | None:
        """Median interval of the last few stamps (None with fewer than three)."""
        recent = self.stamps[-9:]
        if len(recent) < 3:
            return None
        gaps = sorted(b - a for a, b in itertools.pairwise(recent))
        return gaps[len(gaps) // 2]


@dataclass
class _OpenSet:
    stamp_ns: int
    opened_ns: int
    used: dict[str, int] = field(default_factory=dict)  # stamps of the samples it was formed with


class StalenessSynchronizer:
    """Groups stamped samples of several sensors into sets without waiting on dead or late sensors."""

    def __init__(
        self,
        modalities: Mapping[str, ModalityConfig] | Iterable[str],
        *,
        max_latency_s: float = 0.05,
        jump_back_s: float = 1.0,
    ) -> None:
        if not isinstance(modalities, Mapping):
            modalities = {m: ModalityConfig() for m in modalities}
        if not modalities:
            raise ValueError("at least one modality is needed")
        if max_latency_s < 0 or jump_back_s <= 0:
            raise ValueError("need max_latency_s >= 0 and jump_back_s > 0")
        self._sensors = {m: _Sensor(cfg) for m, cfg in modalities.items()}
        self._max_latency_ns = to_ns(float(max_latency_s))
        self._jump_back_ns = to_ns(float(jump_back_s))
        self._lock = threading.Lock()
        self._open: list[_OpenSet] = []  # ordered by stamp
        self._formed: deque[_OpenSet] = deque(maxlen=_EMITTED_HISTORY)
        self._last_formed_ns: int | None = None
        self._now_ns: int | None = None  # newest arrival or poll time seen
        self._first_arrival_ns: int | None = None
        self.resets = 0  # time line restarts (stamps or clock jumped back)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self._sensors)

    def add(self, modality: str, stamp: float | int, payload: Any, arrival: float | int) -> list[SampleSet]:
        """Place one sample that arrived at ``arrival`` (node clock); returns the sets now formed."""
        if modality not in self._sensors:
            raise KeyError(f"unknown modality {modality!r}; configured: {list(self._sensors)}")
        stamp_ns, arrival_ns = to_ns(stamp), to_ns(arrival)
        with self._lock:
            self._observe_clock(arrival_ns)
            sensor = self._sensors[modality]
            self._observe_stamp(modality, stamp_ns, arrival_ns)
            i = bisect.bisect_left(sensor.stamps, stamp_ns)
            if i < len(sensor.stamps) and sensor.stamps[i] == stamp_ns:
                sensor.stats.duplicates += 1
                return []
            sensor.last_arrival_ns = arrival_ns
            if self._first_arrival_ns is None:
                self._first_arrival_ns = arrival_ns
            sensor.stats.received += 1
            sensor.delay_ns = self._place(modality, stamp_ns, arrival_ns)
            sensor.late = sensor.delay_ns is None or sensor.delay_ns > self._max_latency_ns
            sensor.stamps.insert(i, stamp_ns)
            sensor.payloads.insert(i, payload)
            self._prune(sensor)
            return self._form_ready(arrival_ns)

    def poll(self, now: float | int) -> list[SampleSet]:
        """Form the open sets whose wait is over at ``now`` (node clock); call it from a timer."""
        now_ns = to_ns(now)
        with self._lock:
            self._observe_clock(now_ns)
            return self._form_ready(now_ns)

    def stats(self, now: float | int | None = None) -> dict[str, ModalityStats]:
        """Each sensor's state and counters at ``now`` (default: the newest time seen)."""
        with self._lock:
            now_ns = self._now_ns if now is None else to_ns(now)
            return {m: self._stats_of(s, now_ns) for m, s in self._sensors.items()}

    def reset(self) -> None:
        """Start the set time line over and drop every buffered sample (counters are kept)."""
        with self._lock:
            self._restart_timeline()
            for sensor in self._sensors.values():
                self._drop_samples(sensor)

    # -- internals; the lock is held by the caller ------------------------------------------------------

    def _alive(self, sensor: _Sensor, now_ns: int) -> bool:
        return sensor.last_arrival_ns is not None and now_ns - sensor.last_arrival_ns <= to_ns(
            sensor.config.timeout_s
        )

    def _observe_clock(self, t_ns: int) -> None:
        """The node's clock went back (sim time restarted): restart, shifting arrivals so ages are kept."""
        if self._now_ns is not None and t_ns < self._now_ns - self._jump_back_ns:
            shift = t_ns - self._now_ns
            self._restart_timeline()
            for sensor in self._sensors.values():
                self._drop_samples(sensor)
                if sensor.last_arrival_ns is not None:
                    sensor.last_arrival_ns += shift
            if self._first_arrival_ns is not None:
                self._first_arrival_ns += shift
            self._now_ns = t_ns
        elif self._now_ns is None or t_ns > self._now_ns:
            self._now_ns = t_ns

    def _observe_stamp(self, modality: str, stamp_ns: int, arrival_ns: int) -> None:
        sensor = self._sensors[modality]
        if sensor.newest_stamp_ns is not None and stamp_ns < sensor.newest_stamp_ns - self._jump_back_ns:
            self._drop_samples(sensor)  # its old time line's samples can never match again
        last = self._last_formed_ns
        if last is None or stamp_ns >= last - self._jump_back_ns:
            return
        # Far behind the sets: a sensor on its own clock, or the first to leave an old time line. Once no
        # other live sensor is still on the old time line, everybody moved: the set time line starts over.
        still_on_old = any(
            m != modality
            and self._alive(other, arrival_ns)
            and other.newest_stamp_ns is not None
            and other.newest_stamp_ns >= last - self._jump_back_ns
            for m, other in self._sensors.items()
        )
        if not still_on_old:
            self._restart_timeline()

    def _restart_timeline(self) -> None:
        self._open.clear()
        self._formed.clear()
        self._last_formed_ns = None
        for sensor in self._sensors.values():
            sensor.delay_ns, sensor.late = None, False
        self.resets += 1

    @staticmethod
    def _drop_samples(sensor: _Sensor) -> None:
        sensor.stamps.clear()
        sensor.payloads.clear()

    def _place(self, modality: str, stamp_ns: int, arrival_ns: int) -> int | None:
        """Join or open a set; returns the arrival delay after the set opened (None: no set to join)."""
        sensor = self._sensors[modality]
        tolerance = to_ns(sensor.config.tolerance_s)
        best: _OpenSet | None = None
        for candidate in self._open:
            offset = abs(candidate.stamp_ns - stamp_ns)
            if offset > tolerance or (best is not None and offset >= abs(best.stamp_ns - stamp_ns)):
                continue
            j = sensor.nearest(candidate.stamp_ns)
            if j is None or abs(sensor.stamps[j] - candidate.stamp_ns) > offset:
                best = candidate  # this sample is the sensor's nearest to that set
        if best is not None:
            return arrival_ns - best.opened_ns
        formed = sorted(
            (s for s in self._formed if abs(s.stamp_ns - stamp_ns) <= tolerance),
            key=lambda s: abs(s.stamp_ns - stamp_ns),
        )
        # A set already formed without this sensor, or with a farther sample of it, was this sample's set.
        missed = next(
            (
                s
                for s in formed
                if modality not in s.used or abs(s.used[modality] - s.stamp_ns) > abs(stamp_ns - s.stamp_ns)
            ),
            None,
        )
        if missed is None and (self._last_formed_ns is None or stamp_ns > self._last_formed_ns):
            bisect.insort(self._open, _OpenSet(stamp_ns, arrival_ns), key=lambda s: s.stamp_ns)
            return 0
        sensor.stats.late_samples += 1
        late_for = missed or (formed[0] if formed else None)
        return None if late_for is None else arrival_ns - late_for.opened_ns

    def _prune(self, sensor: _Sensor) -> None:
        # Keep what an open set could still use: an open set may wait max_latency for a lagging sensor.
        cfg = sensor.config
        horizon = sensor.stamps[-1] - to_ns(cfg.timeout_s + cfg.tolerance_s) - self._max_latency_ns
        drop = max(bisect.bisect_left(sensor.stamps, horizon), len(sensor.stamps) - cfg.buffer_size)
        if drop > 0:
            del sensor.stamps[:drop]
            del sensor.payloads[:drop]

    def _has_sample_for(self, sensor: _Sensor, set_ns: int) -> bool:
        """A sample near the set's stamp is here, and no closer one is due (sensors slower than sets)."""
        j = sensor.nearest(set_ns)
        if j is None:
            return False
        newest = sensor.stamps[-1]
        period = sensor.period_ns()
        if newest >= set_ns or period is None:
            return True
        due_offset = abs(newest + period - set_ns)
        return not (
            due_offset < abs(sensor.stamps[j] - set_ns) and due_offset <= to_ns(sensor.config.tolerance_s)
        )

    def _expected(self, sensor: _Sensor, now_ns: int) -> bool:
        """Whether open sets wait for this sensor: alive and punctual, or not heard of yet at start-up."""
        if sensor.last_arrival_ns is None:
            # For one timeout after the first sample, the others may just not have spoken yet.
            return self._first_arrival_ns is not None and now_ns - self._first_arrival_ns <= to_ns(
                sensor.config.timeout_s
            )
        return self._alive(sensor, now_ns) and not sensor.late

    def _is_complete(self, open_set: _OpenSet, now_ns: int) -> bool:
        return all(
            self._has_sample_for(sensor, open_set.stamp_ns)
            for sensor in self._sensors.values()
            if self._expected(sensor, now_ns)
        )

    def _form_ready(self, now_ns: int) -> list[SampleSet]:
        ready = 0  # sets are formed in stamp order: a ready set also releases the older ones
        for k, open_set in enumerate(self._open):
            if now_ns - open_set.opened_ns >= self._max_latency_ns or self._is_complete(open_set, now_ns):
                ready = k + 1
        formed = [self._form(open_set, now_ns) for open_set in self._open[:ready]]
        del self._open[:ready]
        return [s for s in formed if s is not None]

    def _form(self, open_set: _OpenSet, now_ns: int) -> SampleSet | None:
        samples: dict[str, Any] = {}
        stamps: dict[str, int] = {}
        missing: dict[str, str] = {}
        for m, sensor in self._sensors.items():
            j = sensor.nearest(open_set.stamp_ns)
            if j is not None:  # matched by stamp: used even if the sensor went silent since
                samples[m], stamps[m] = sensor.payloads[j], sensor.stamps[j]
            elif sensor.last_arrival_ns is None:
                missing[m] = "never_received"
            elif not self._alive(sensor, now_ns):
                missing[m] = "dead"
            else:
                missing[m] = "late" if sensor.late else "out_of_tolerance"
        self._last_formed_ns = open_set.stamp_ns
        open_set.used = stamps
        self._formed.append(open_set)
        if not samples:  # its samples were dropped by a stamp jump
            return None
        for m, sensor in self._sensors.items():
            if m in samples:
                sensor.stats.used_sets += 1
            else:
                sensor.stats.missing_sets += 1
        return SampleSet(open_set.stamp_ns, samples, stamps, missing, open_set.opened_ns, now_ns)

    def _stats_of(self, sensor: _Sensor, now_ns: int | None) -> ModalityStats:
        stats = ModalityStats(**vars(sensor.stats))
        if sensor.last_arrival_ns is None:
            return stats
        alive = now_ns is not None and self._alive(sensor, now_ns)
        stats.state = ("late" if sensor.late else "ok") if alive else "dead"
        if now_ns is not None:
            stats.age_s = max(now_ns - sensor.last_arrival_ns, 0) / NS_PER_S
        stats.delay_s = None if sensor.delay_ns is None else sensor.delay_ns / NS_PER_S
        period = sensor.period_ns()
        stats.rate_hz = NS_PER_S / period if period else None
        return stats

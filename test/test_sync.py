"""StalenessSynchronizer without ROS: grouping, liveness by arrival, late sensors, jumps, rates, threads.

Most tests replay a scripted stream: each sensor's samples with a stamp and an arrival time, plus polls
every 10 ms as the fusion node's timer does, and look at the sets that come out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import numpy as np
import pytest

from midas_ros.sync import NS_PER_S, ModalityConfig, SampleSet, StalenessSynchronizer, to_ns

MODS = ("depth", "lidar", "csi")
MS = 1_000_000
PERIOD = 100 * MS
# Real sensors are not triggered together: stamp offsets from the frame time, and transport latencies.
OFFSETS = {"depth": 0, "lidar": 12 * MS, "csi": -18 * MS}
LATENCY = {"depth": 8 * MS, "lidar": 15 * MS, "csi": 3 * MS}


def make_sync(**kwargs) -> StalenessSynchronizer:
    cfg = ModalityConfig(timeout_s=0.5, tolerance_s=0.05)
    return StalenessSynchronizer({m: cfg for m in MODS}, **kwargs)


def stream(
    start: int,
    frames: int,
    *,
    mods: Iterable[str] = MODS,
    stamp_shift: dict[str, int] | None = None,
    extra_latency: dict[str, int] | None = None,
    period: dict[str, int] | None = None,
) -> list[tuple[int, str, int]]:
    """(arrival, modality, stamp) of `frames` 10 Hz frames from `start` (ns), sorted by arrival."""
    events = []
    for m in mods:
        step = (period or {}).get(m, PERIOD)
        for k in range(frames * PERIOD // step):
            stamp = start + k * step + OFFSETS[m]
            arrival = stamp + LATENCY[m] + (extra_latency or {}).get(m, 0)
            events.append((arrival, m, stamp + (stamp_shift or {}).get(m, 0)))
    return sorted(events)


def replay(sync: StalenessSynchronizer, events, until: int | None = None) -> list[SampleSet]:
    """Feed the events in arrival order, polling every 10 ms in between, as the node does."""
    sets: list[SampleSet] = []
    if not events:
        return sets
    t = events[0][0]
    end = max(until or 0, events[-1][0] + 200 * MS)
    queue = list(events)
    while t <= end:
        while queue and queue[0][0] <= t:
            arrival, m, stamp = queue.pop(0)
            sets += sync.add(m, stamp, (m, stamp), arrival)
        sets += sync.poll(t)
        t += 10 * MS
    return sets


def labels(sets: list[SampleSet]) -> list[str]:
    return ["+".join(m for m in MODS if m in s.samples) for s in sets]


def test_to_ns_int_is_nanoseconds_float_is_seconds():
    assert to_ns(1_500_000_000) == 1_500_000_000
    assert to_ns(1.5) == 1_500_000_000
    assert to_ns(np.int64(7)) == 7 and to_ns(np.float32(0.5)) == 500_000_000
    with pytest.raises(TypeError):
        to_ns(True)


def test_one_set_per_frame_with_each_sensors_sample_formed_when_the_last_arrives():
    sync = make_sync()
    sets = replay(sync, stream(100 * NS_PER_S, 20))
    assert len(sets) == 20 and labels(sets) == ["depth+lidar+csi"] * 20
    for k, s in enumerate(sets):
        frame = 100 * NS_PER_S + k * PERIOD
        assert s.stamps_ns == {m: frame + OFFSETS[m] for m in MODS}
        assert s.samples["lidar"] == ("lidar", frame + OFFSETS["lidar"])
        assert s.stamp_ns == frame + OFFSETS["csi"]  # the first to arrive opened the set
        # Formed when lidar, the last, arrived (polls are 10 ms apart: add() itself returned the set).
        assert s.formed_ns == frame + OFFSETS["lidar"] + LATENCY["lidar"]
        assert s.missing == {}
    stats = sync.stats()
    assert all(stats[m].state == "ok" and stats[m].used_sets == 20 for m in MODS)
    assert stats["depth"].rate_hz == pytest.approx(10.0)


def test_dead_sensor_is_left_out_then_used_again_and_output_never_stops():
    sync = make_sync()
    t0 = 50 * NS_PER_S
    events = stream(t0, 10) + stream(t0 + 10 * PERIOD, 15, mods=("depth", "lidar"))
    events += stream(t0 + 25 * PERIOD, 10)
    sets = replay(sync, sorted(events))
    assert len(sets) == 35, "one set per frame, whatever is alive"
    assert labels(sets)[:10] == ["depth+lidar+csi"] * 10
    assert labels(sets)[10:25] == ["depth+lidar"] * 15
    assert labels(sets)[25:] == ["depth+lidar+csi"] * 10
    # While csi is within its timeout the sets wait max_latency for it; then it is dead and not waited for.
    silent = sets[10:25]
    assert {s.missing["csi"] for s in silent[:4]} == {"out_of_tolerance"}
    assert {s.missing["csi"] for s in silent[6:]} == {"dead"}
    assert max(s.wait_s for s in silent[6:]) < 0.02
    assert sync.stats()["csi"].state == "ok" and sync.stats()["csi"].missing_sets == 15


def test_never_received_and_all_dead_forms_nothing():
    sync = make_sync()
    assert sync.poll(3.0) == []
    sets = sync.add("lidar", 3.0, "l", arrival=3.01)
    sets += sync.poll(3.07)  # max_latency over: the set goes out with what it has
    assert len(sets) == 1 and sets[0].samples == {"lidar": "l"}
    assert sets[0].missing == {"depth": "never_received", "csi": "never_received"}
    assert sync.poll(10.0) == []
    stats = sync.stats()
    assert stats["lidar"].state == "dead" and stats["lidar"].age_s == pytest.approx(6.99)
    assert stats["depth"].state == "never_received" and stats["depth"].age_s is None


def test_out_of_order_arrivals_and_duplicates():
    sync = StalenessSynchronizer({"depth": ModalityConfig(), "lidar": ModalityConfig()}, max_latency_s=0.2)
    assert sync.add("depth", 2.0, "d2.0", arrival=2.01) == []
    assert sync.add("lidar", 1.99, "l1.99", arrival=2.02) != []
    assert sync.add("lidar", 1.99, "again", arrival=2.03) == []  # repeated stamp: ignored
    # depth opens a set at 2.1; lidar's scans arrive in the wrong order: 2.2 (a set of its own) first.
    assert sync.add("depth", 2.1, "d2.1", arrival=2.11) == []
    assert sync.add("lidar", 2.2, "l2.2", arrival=2.12) == []
    sets = sync.add("lidar", 2.09, "l2.09", arrival=2.13)
    assert [s.samples for s in sets] == [{"depth": "d2.1", "lidar": "l2.09"}]
    assert sync.add("depth", 2.21, "d2.21", arrival=2.22)[0].samples == {"depth": "d2.21", "lidar": "l2.2"}
    stats = sync.stats()
    assert (
        stats["lidar"].duplicates == 1 and stats["lidar"].received == 3 and stats["lidar"].late_samples == 0
    )


def test_tolerance_respected():
    cfg = {"depth": ModalityConfig(tolerance_s=0.05), "lidar": ModalityConfig(tolerance_s=0.05)}
    sync = StalenessSynchronizer(cfg, max_latency_s=0.05)
    sync.add("lidar", 5.0, "l", arrival=5.0)
    sets = sync.add("depth", 5.049, "d", arrival=5.01)
    assert sets[0].samples == {"depth": "d", "lidar": "l"}  # 49 ms apart: together
    sets = sync.add("depth", 5.2, "d2", arrival=5.2)
    sets += sync.add("lidar", 5.26, "l2", arrival=5.24)  # 60 ms from depth: a set of its own
    sets += sync.poll(5.31)
    assert [s.samples for s in sets] == [{"depth": "d2"}, {"lidar": "l2"}]
    assert sets[0].missing == {"lidar": "out_of_tolerance"}


def test_lasting_backward_stamp_jump_resumes_at_once():
    """Stamps jump 20 s back while the clock goes on (driver restart, looped bag under a live clock)."""
    sync = make_sync()
    t0 = 1000 * NS_PER_S
    before = stream(t0, 10)
    after = stream(t0 + 10 * PERIOD, 30, stamp_shift=dict.fromkeys(MODS, -20 * NS_PER_S))
    sets = replay(sync, sorted(before + after))
    stamps = np.array([s.stamp_ns for s in sets])
    jumped = sets[int(np.argmax(stamps < t0)) :]
    assert sync.resets == 1
    assert len(sets[:10]) == 10 and len(jumped) >= 29  # at most the frame during the jump is lost
    assert labels(jumped[1:]) == ["depth+lidar+csi"] * (len(jumped) - 1)
    # The first set after the jump came within one period of the jump's first sample.
    first_after = min(a for a, _, s in after)
    assert jumped[0].formed_ns - first_after <= PERIOD
    assert all(st.state == "ok" for st in sync.stats().values())


def test_one_sensor_on_its_own_clock_is_late_never_dead_and_the_others_go_on():
    sync = make_sync()
    events = stream(300 * NS_PER_S, 30, stamp_shift={"lidar": -20 * NS_PER_S})
    sets = replay(sync, events)
    # Its very first scan, before any set was formed, makes a set of its own; then it is late for good.
    assert [s.samples for s in sets[:1]] == [{"lidar": ("lidar", 280012000000)}]
    assert len(sets) == 31 and labels(sets[1:]) == ["depth+csi"] * 30
    assert sync.resets == 0
    assert {s.missing["lidar"] for s in sets[2:]} == {"late"}
    lidar = sync.stats()["lidar"]
    assert lidar.state == "late" and lidar.alive and lidar.delay_s is None


@pytest.mark.parametrize(("max_latency_s", "fused"), [(0.6, True), (0.05, False)])
def test_lagging_sensor_fused_when_max_latency_covers_its_lag_else_late(max_latency_s, fused):
    """LiDAR samples arrive 0.5 s after their stamps (an Ouster on a busy host)."""
    sync = make_sync(max_latency_s=max_latency_s)
    t0 = 400 * NS_PER_S
    events = stream(t0, 50, extra_latency={"lidar": 500 * MS})
    sets = replay(sync, events)
    assert len(sets) == 50
    lidar = sync.stats()["lidar"]
    assert lidar.state != "dead"
    if fused:
        # Counted from its first delivery on: before it, nothing says the LiDAR exists.
        first_lidar = min(a for a, m, _ in events if m == "lidar")
        since = [s for s in sets if s.formed_ns >= first_lidar]
        assert len(since) >= 44 and sum("lidar" in s.samples for s in since) >= 0.95 * len(since)
        assert lidar.state == "ok"
        assert all(0.45 <= s.wait_s <= 0.6 for s in since)  # output waits that long
    else:
        assert not any("lidar" in s.samples for s in sets)
        assert lidar.state == "late" and lidar.delay_s > 0.4
        # The others are not delayed: each set goes out when depth and csi are in (once lidar is
        # known to be late, from its first sample on), as without the lagging sensor.
        reference = replay(make_sync(), stream(t0, 50, mods=("depth", "csi")))
        late_known = next(k for k, s in enumerate(sets) if s.formed_ns > t0 + 500 * MS + 50 * MS)
        assert [s.wait_s for s in sets[late_known:]] == [s.wait_s for s in reference[late_known:]]
        assert {s.missing["lidar"] for s in sets[late_known:]} == {"late"}


def test_clock_jump_back_restarts_and_keeps_liveness():
    sync = make_sync()
    sets = replay(sync, stream(200 * NS_PER_S, 5))
    assert len(sets) == 5
    # Sim time restarts 150 s earlier (a bag played again): the next samples are on the new time line.
    sets = replay(sync, stream(50 * NS_PER_S, 5))
    assert sync.resets == 1
    assert labels(sets) == ["depth+lidar+csi"] * 5


def test_slower_sensor_samples_serve_the_faster_ones_sets():
    """Depth at 30 Hz, LiDAR at 10 Hz: a set per depth frame; each takes the LiDAR scan nearest to it."""
    sync = make_sync()
    third = PERIOD // 3
    events = stream(20 * NS_PER_S, 30, mods=("depth", "lidar"), period={"depth": third})
    sets = replay(sync, events)
    assert len(sets) == 90
    assert sum("lidar" in s.samples for s in sets) >= 85
    for s in sets:
        if "lidar" in s.samples:
            assert abs(s.stamps_ns["lidar"] - s.stamp_ns) <= 50 * MS
    assert max(s.wait_s for s in sets[3:]) <= 0.05 + 0.011


def test_same_input_same_sets():
    events = stream(7 * NS_PER_S, 20, extra_latency={"csi": 80 * MS})
    events = [e for e in events if not (e[1] == "depth" and 7.5e9 < e[2] < 8.2e9)]
    runs = [replay(make_sync(), events) for _ in range(2)]
    key = [[(s.stamp_ns, s.stamps_ns, s.missing, s.formed_ns) for s in run] for run in runs]
    assert key[0] == key[1] and len(key[0]) >= 19


def test_unknown_modality_and_bad_config():
    sync = make_sync()
    with pytest.raises(KeyError, match="radar"):
        sync.add("radar", 1.0, None, arrival=1.0)
    with pytest.raises(ValueError):
        ModalityConfig(timeout_s=0.0)
    with pytest.raises(ValueError):
        StalenessSynchronizer(MODS, max_latency_s=-1)


def test_buffer_is_bounded():
    sync = StalenessSynchronizer({"depth": ModalityConfig(timeout_s=100.0, buffer_size=8)})
    for k in range(100):
        sync.add("depth", 1.0 + 0.01 * k, k, arrival=1.0 + 0.01 * k)
    assert sync.stats()["depth"].received == 100
    assert len(sync._sensors["depth"].stamps) == 8


def test_thread_safe_under_concurrent_adds_and_polls():
    sync = make_sync()
    n = 2000
    errors: list[BaseException] = []
    sets: list[SampleSet] = []
    lock = threading.Lock()

    def run(task) -> None:
        try:
            for k in range(n):
                got = task(k)
                with lock:
                    sets.extend(got)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    # One clock for every thread, as the node's callbacks share the node's clock.
    tasks = [lambda k, m=m: sync.add(m, time.monotonic_ns(), k, arrival=time.monotonic_ns()) for m in MODS]
    tasks.append(lambda k: sync.poll(time.monotonic_ns()))
    threads = [threading.Thread(target=run, args=(task,)) for task in tasks]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert all(st.received == n for st in sync.stats().values())
    stamps = [s.stamp_ns for s in sets]
    assert len(set(stamps)) == len(stamps), "a set is formed once"

"""StalenessSynchronizer without ROS: grouping, staleness, recovery, ordering, jumps, tolerance, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from midas_ros.sync import ModalityConfig, StalenessSynchronizer, to_ns

MODS = ("depth", "lidar", "csi")


def make_sync(**kwargs) -> StalenessSynchronizer:
    cfg = ModalityConfig(timeout_s=0.35, tolerance_s=0.06)
    return StalenessSynchronizer({m: cfg for m in MODS}, **kwargs)


def feed(sync: StalenessSynchronizer, t: float, modalities=MODS, offsets=None) -> None:
    offsets = offsets or {}
    for m in modalities:
        stamp = t + offsets.get(m, 0.0)
        sync.add(m, stamp, (m, round(stamp, 3)))


def test_to_ns_int_is_nanoseconds_float_is_seconds():
    assert to_ns(1_500_000_000) == 1_500_000_000
    assert to_ns(1.5) == 1_500_000_000
    assert to_ns(np.int64(7)) == 7 and to_ns(np.float32(0.5)) == 500_000_000
    with pytest.raises(TypeError):
        to_ns(True)


def test_alive_sensors_grouped_with_nearest_samples():
    sync = make_sync()
    offsets = {"lidar": -0.02, "csi": 0.01}
    sets = []
    for k in range(10):
        t = 100.0 + 0.1 * k
        feed(sync, t, offsets=offsets)
        sets.append(sync.poll(t + 0.03))
    assert all(s is not None for s in sets)
    last = sets[-1]
    assert last.present(MODS) == (True, True, True)
    assert last.missing == {}
    # The set stamp is the freshest sample; each modality gives the sample nearest to it.
    assert last.stamp == pytest.approx(100.9 + 0.01)
    assert last.samples["depth"] == ("depth", 100.9)
    assert last.samples["lidar"] == ("lidar", 100.88)
    assert last.stamps_ns["lidar"] == to_ns(100.88)
    stats = sync.stats()
    assert stats["depth"].received == 10
    assert stats["depth"].rate_hz == pytest.approx(10.0, rel=1e-3)
    assert stats["lidar"].used_sets == 10 and stats["lidar"].missing_sets == 0


def test_poll_returns_none_when_nothing_new():
    sync = make_sync()
    feed(sync, 10.0)
    assert sync.poll(10.01) is not None
    assert sync.poll(10.02) is None  # same data, no second inference
    feed(sync, 10.1)
    assert sync.poll(10.11) is not None


def test_dead_sensor_missing_within_timeout_and_used_again_when_back():
    sync = make_sync()
    t = 0.0
    csi_states = []
    for k in range(40):
        t = 50.0 + 0.1 * k
        alive = ["depth", "lidar"] + (["csi"] if not 10 <= k < 25 else [])
        feed(sync, t, alive)
        s = sync.poll(t + 0.01)
        assert s is not None, "output must continue while a sensor is dead"
        csi_states.append("csi" in s.samples)
        if not s.samples.get("csi"):
            assert s.missing["csi"] in ("stale", "out_of_tolerance")
    # csi died at k=10: kept while within tolerance/timeout, missing after at most 0.35 s (4 frames).
    first_missing = csi_states.index(False)
    assert 10 <= first_missing <= 14
    assert not any(csi_states[14:25])
    assert all(csi_states[25:]), "csi must be used again as soon as it returns"
    stats = sync.stats()
    assert stats["csi"].missing_sets == 15
    assert stats["depth"].missing_sets == 0
    assert stats["csi"].alive


def test_stale_marks_missing_even_within_tolerance_of_an_old_set():
    sync = make_sync()
    feed(sync, 1.0)
    feed(sync, 1.5, ["depth"])  # lidar and csi: newest is 0.5 s old > 0.35 s timeout
    s = sync.poll(1.5)
    assert s.present(MODS) == (True, False, False)
    assert s.missing == {"lidar": "stale", "csi": "stale"}


def test_never_received_and_all_dead():
    sync = make_sync()
    assert sync.poll(3.0) is None
    feed(sync, 3.0, ["lidar"])
    s = sync.poll(3.0)
    assert s.missing == {"depth": "never_received", "csi": "never_received"}
    assert sync.poll(10.0) is None  # everything stale: no set, no waiting
    assert sync.stats()["lidar"].alive is False
    assert sync.stats()["lidar"].last_age_s == pytest.approx(7.0)


def test_out_of_order_and_duplicates():
    sync = make_sync()
    for t in (2.0, 2.2, 2.1, 2.2, 2.1):  # out of order, with repeats
        sync.add("depth", t, t)
    st = sync.stats()["depth"]
    assert st.received == 3
    assert st.duplicates == 2
    # A late, out-of-order lidar sample is still the nearest one for the set.
    sync.add("lidar", 2.19, "late")
    sync.add("lidar", 2.05, "early")
    s = sync.poll(2.21)
    assert s.stamp == pytest.approx(2.2)
    assert s.samples == {"depth": 2.2, "lidar": "late"}
    assert sync.stats()["depth"].rate_hz == pytest.approx(10.0, rel=1e-3)


def test_tolerance_respected():
    cfg = {"depth": ModalityConfig(timeout_s=1.0, tolerance_s=0.05), "lidar": ModalityConfig(timeout_s=1.0)}
    sync = StalenessSynchronizer(cfg)
    sync.add("lidar", 5.0, "l")
    sync.add("depth", 5.049, "d")
    s = sync.poll(5.05)
    assert s.samples == {"depth": "d", "lidar": "l"}  # 49 ms <= 50 ms, and lidar's default 100 ms
    sync.add("depth", 5.2, "d2")
    s = sync.poll(5.2)
    assert s.samples == {"depth": "d2"}
    assert s.missing == {"lidar": "out_of_tolerance"}  # alive (0.2 s < 1 s) but 200 ms away


def test_backward_jump_resets_buffers():
    sync = make_sync()
    for k in range(5):
        feed(sync, 200.0 + 0.1 * k)
        assert sync.poll(200.0 + 0.1 * k) is not None
    # The bag loops: stamps start over at 100 s; old samples must not be used.
    feed(sync, 100.0, ["depth"])
    assert sync.resets == 1
    s = sync.poll(100.01)
    assert s is not None and s.samples == {"depth": ("depth", 100.0)}
    feed(sync, 100.1)
    s = sync.poll(100.11)
    assert s.present(MODS) == (True, True, True)
    assert sync.stats()["depth"].received == 7  # counters survive the reset


def test_clock_jump_back_resets():
    sync = make_sync()
    feed(sync, 20.0)
    assert sync.poll(20.0) is not None
    assert sync.poll(19.5) is None or sync.resets == 0  # a small step back is not a loop
    assert sync.resets == 0
    sync.poll(5.0)
    assert sync.resets == 1
    assert sync.stats()["depth"].alive is False


def test_trigger_modality_forms_set_on_arrival():
    sync = make_sync(trigger="depth")
    assert sync.add("lidar", 7.0, "l") is None
    assert sync.add("csi", 6.0, "c") is None  # 1 s older than the trigger: stale
    s = sync.add("depth", 7.02, "d")
    assert s is not None
    assert s.stamp == pytest.approx(7.02)
    assert s.samples == {"depth": "d", "lidar": "l"}
    assert s.missing == {"csi": "stale"}
    with pytest.raises(ValueError, match="trigger"):
        StalenessSynchronizer(MODS, trigger="radar")


def test_unknown_modality_and_bad_config():
    sync = make_sync()
    with pytest.raises(KeyError, match="radar"):
        sync.add("radar", 1.0, None)
    with pytest.raises(ValueError):
        ModalityConfig(timeout_s=0.0)


def test_buffer_is_bounded():
    sync = StalenessSynchronizer({"depth": ModalityConfig(timeout_s=100.0, buffer_size=8)})
    for k in range(100):
        sync.add("depth", 1.0 + 0.01 * k, k)
    assert sync.stats()["depth"].received == 100
    s = sync.poll(2.0)
    assert s.samples["depth"] == 99
    assert len(sync._buffers["depth"].stamps) == 8


def test_thread_safe_under_concurrent_adds_and_polls():
    sync = make_sync()
    n = 2000
    errors: list[BaseException] = []

    def producer(m: str) -> None:
        try:
            for k in range(n):
                sync.add(m, to_ns(1000.0) + k * 1_000_000, k)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    sets = []

    def consumer() -> None:
        try:
            for k in range(n):
                s = sync.poll(to_ns(1000.0) + k * 1_000_000)
                if s is not None:
                    sets.append(s)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=producer, args=(m,)) for m in MODS] + [
        threading.Thread(target=consumer)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert all(st.received == n for st in sync.stats().values())
    stamps = [s.stamp_ns for s in sets]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_lagging_modality_does_not_reset():
    sync = make_sync()
    for k in range(30):
        t = 300.0 + 0.1 * k
        sync.add("depth", t, k)
        sync.add("csi", t - 2.0, k)  # delivered 2 s late (slow link): not a loop
    assert sync.resets == 0
    s = sync.poll(302.9)
    assert s.samples == {"depth": 29}
    assert s.missing["csi"] == "stale"


def test_max_wait_holds_a_set_for_an_alive_sensor_in_flight_but_not_for_a_dead_one():
    cfg = ModalityConfig(timeout_s=0.5, tolerance_s=0.05)
    sync = StalenessSynchronizer({"depth": cfg, "lidar": cfg}, max_wait_s=0.08)
    sync.add("depth", 1.0, "d0")
    sync.add("lidar", 1.01, "l0")
    assert sync.poll(1.02).samples == {"depth": "d0", "lidar": "l0"}
    sync.add("depth", 1.1, "d1")  # lidar's matching sample is still in flight
    assert sync.poll(1.12) is None
    sync.add("lidar", 1.11, "l1")
    assert sync.poll(1.13).samples == {"depth": "d1", "lidar": "l1"}
    # lidar dies: the wait is bounded by max_wait_s, then the set goes out without it.
    sync.add("depth", 1.2, "d2")
    assert sync.poll(1.22) is None
    s = sync.poll(1.29)
    assert s.samples == {"depth": "d2"} and s.missing == {"lidar": "out_of_tolerance"}
    # Once lidar is stale, nothing waits for it at all.
    sync.add("depth", 1.7, "d3")
    s = sync.poll(1.7)
    assert s.samples == {"depth": "d3"} and s.missing == {"lidar": "stale"}

"""Finding the person in a base-frame point cloud (midas_ros.preprocess.person), from the points alone."""

from __future__ import annotations

import numpy as np
import pytest

from midas_ros.preprocess import PersonSearch, PersonTrack, PreprocessError, find_person, preprocess_lidar
from midas_ros.rig import Pose


def _box(lo: tuple[float, float, float], hi: tuple[float, float, float], step: float = 0.05) -> np.ndarray:
    """Points filling an axis-aligned box (base frame) on a step-m grid, corners included."""
    axes = [np.arange(a, b + step / 2, step) for a, b in zip(lo, hi, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _person(x: float = 3.0, y: float = 0.0, height: float = 1.7) -> np.ndarray:
    """A standing person as a 0.3 x 0.4 m column, feet on the floor."""
    return _box((x - 0.15, y - 0.2, 0.0), (x + 0.15, y + 0.2, height))


FLOOR = _box((0.0, -3.5, 0.0), (6.0, 3.5, 0.0), step=0.1)
WALL = _box((4.9, -3.0, 0.0), (4.95, 3.0, 2.6))  # 6 m wide, up to the ceiling: too wide and too tall
TABLE = _box((2.0, 1.0, 0.0), (2.8, 1.8, 0.65))  # too low for a person's head
CABINET = _box((4.0, -2.0, 0.0), (4.4, -1.6, 2.0))  # tall and narrow: passes the shape gates, far away


def test_person_is_chosen_among_wall_table_and_cabinet() -> None:
    person = _person()
    cloud = np.concatenate([FLOOR, WALL, TABLE, person, CABINET])
    box = find_person(cloud)
    assert box.contains(person).all()
    for other in (WALL, TABLE, CABINET):
        assert not box.contains(other).any()
    np.testing.assert_allclose(box.centroid[:2], [3.0, 0.0], atol=0.1)
    # the box is the cluster's cells plus the margin: no bigger than the person and two cells
    assert np.all(box.hi - box.lo < np.array([0.3, 0.4, 1.7]) + 2 * PersonSearch().margin_m + [0.2, 0.2, 0.4])
    # the order of the points does not matter
    shuffled = cloud[np.random.default_rng(0).permutation(len(cloud))]
    again = find_person(shuffled)
    np.testing.assert_array_equal([again.lo, again.hi], [box.lo, box.hi])
    np.testing.assert_allclose(again.centroid, box.centroid, atol=1e-12)


def test_cabinet_alone_passes_the_shape_gates() -> None:
    """The shape gates alone cannot tell a tall narrow cabinet from a person: only the choice among the
    candidates (height near 1.6 m, near the sensors) does; so the test above really tests that choice."""
    box = find_person(np.concatenate([FLOOR, WALL, TABLE, CABINET]))
    assert box.contains(CABINET).all()


_GATES = PersonSearch()


@pytest.mark.parametrize(
    ("name", "points"),
    [
        ("too wide", _box((3.0, -0.2, 0.0), (3.3, _GATES.max_width_m + 0.1, 1.7))),  # a sofa's back
        ("too tall", _box((3.0, -0.2, 0.0), (3.3, 0.2, 3.0))),  # a pillar: cut at the region's ceiling
        ("too low", _box((3.0, -0.2, 0.0), (3.3, 0.2, _GATES.min_top_m - 0.25))),  # a chair
        ("floating", _box((3.0, -0.2, _GATES.max_bottom_m + 0.2), (3.3, 0.2, 1.8))),  # a wall shelf
        ("too small", _box((3.0, 0.0, 0.5), (3.05, 0.05, 1.2), step=0.2)),  # 4 points: < min_cells
        ("outside the region", _person(x=5.6)),
        ("cut by the far face", _box((4.7, -0.3, 0.0), (5.5, 0.3, 1.6))),  # part of something larger
        ("cut by a side face", _box((2.0, 2.7, 0.0), (2.4, 3.5, 1.6))),
        ("behind the rig", _person(x=-1.0)),
    ],
)
def test_no_person_shaped_cluster_is_rejected(name: str, points: np.ndarray) -> None:
    with pytest.raises(PreprocessError) as info:
        find_person(np.concatenate([FLOOR, WALL, TABLE, points]))
    assert info.value.reason == "no_person", name
    assert isinstance(info.value, ValueError)


def test_empty_region_is_no_person() -> None:
    for cloud in (np.zeros((0, 3)), FLOOR, _person(x=-2.0), np.full((10, 3), np.nan)):
        with pytest.raises(PreprocessError) as info:
            find_person(cloud)
        assert info.value.reason == "no_person"


def test_points_below_the_floor_cut_are_ignored() -> None:
    person = _person()
    # A 0.25 m high stage under the person joins it into one 3 m wide cluster ...
    stage = _box((1.5, -1.5, 0.0), (4.5, 1.5, 0.25))
    cloud = np.concatenate([stage, person])
    with pytest.raises(PreprocessError) as info:
        find_person(cloud)
    assert info.value.reason == "no_person"
    # ... unless the floor cut is above it: then only the person's points above it count.
    high = PersonSearch(floor_m=0.3)
    box = find_person(cloud, high)
    assert box.contains(person[person[:, 2] >= 0.3]).all()
    kept = box.contains(stage) & high.contains(stage)  # what the preprocessing keeps of the box
    assert not kept.any()
    # the floor itself (z = 0, and noise a few cm above it) never joins the person
    noisy_floor = FLOOR + np.random.default_rng(1).normal(0.0, 0.02, FLOOR.shape) * [0, 0, 1]
    box = find_person(np.concatenate([noisy_floor, person]))
    assert box.lo[2] >= PersonSearch().floor_m - PersonSearch().margin_m - 1e-9
    np.testing.assert_allclose(box.centroid[:2], [3.0, 0.0], atol=0.1)


def test_a_second_candidate_follows_the_track() -> None:
    left, right = _person(y=1.0), _person(y=-1.0, height=1.6)
    cloud = np.concatenate([FLOOR, left, right])
    # Without a track the most person-like candidate (top nearer 1.6 m) wins ...
    assert find_person(cloud).contains(right).all()
    # ... with one, the candidate nearest the previous centroid, even the less person-like one.
    assert find_person(cloud, near=np.array([3.0, 1.0, 0.9])).contains(left).all()
    assert find_person(cloud, near=np.array([3.1, 0.1, 0.9])).contains(left).all()  # the nearer one
    assert find_person(cloud, near=np.array([3.0, -0.9, 0.9])).contains(right).all()
    # A track farther than track_radius_m from every candidate is no help.
    assert find_person(cloud, near=np.array([1.0, 2.5, 0.9])).contains(right).all()
    wide = PersonSearch(track_radius_m=3.0)
    assert find_person(cloud, wide, near=np.array([1.0, 2.5, 0.9])).contains(left).all()


def test_person_track_ages_out() -> None:
    track = PersonTrack(max_age_s=1.0)
    assert track.near(0.0) is None and track.near(None) is None
    centroid = np.array([3.0, 0.5, 0.9])
    track.update(centroid, 10.0)
    for stamp in (10.0, 10.5, 11.0, 9.2, None):  # within max_age_s either way, or no stamp asked
        np.testing.assert_array_equal(track.near(stamp), centroid)
    for stamp in (11.01, 12.0, 8.9):
        assert track.near(stamp) is None
    short = PersonTrack(max_age_s=0.2)
    short.update(centroid, 10.0)
    assert short.near(10.2) is not None and short.near(10.21) is None
    # updated without a stamp: only callers without stamps get it
    track.update(centroid + 1, None)
    np.testing.assert_array_equal(track.near(None), centroid + 1)
    assert track.near(10.0) is None


def test_preprocess_lidar_keeps_and_updates_the_track() -> None:
    """Two people: a track set on the less person-like one keeps the LiDAR on it frame after frame,
    until the track ages out."""
    pose = Pose(z=1.3, pitch=0.1)
    left, right = _person(y=1.0, height=2.0), _person(y=-1.0)
    cloud = pose.from_base(np.concatenate([FLOOR, left, right]))
    track = PersonTrack(max_age_s=1.0)
    untracked = preprocess_lidar(cloud, pose, track=track, stamp_s=0.0)
    assert untracked[:, 1].mean() < -0.8  # the person-like one
    np.testing.assert_allclose(track.centroid[:2], [3.0, -1.0], atol=0.1)

    track.update(np.array([3.0, 1.0, 1.0]), 0.0)
    for stamp in (0.1, 0.2, 0.3):
        out = preprocess_lidar(cloud, pose, track=track, stamp_s=stamp)
        assert out[:, 1].mean() > 0.8
        np.testing.assert_allclose(track.centroid[:2], [3.0, 1.0], atol=0.1)
    out = preprocess_lidar(cloud, pose, track=track, stamp_s=2.0)  # 1.7 s since the last frame
    assert out[:, 1].mean() < -0.8
    # a rejected frame leaves the track alone
    before = track.centroid.copy()
    with pytest.raises(PreprocessError):
        preprocess_lidar(pose.from_base(FLOOR), pose, track=track, stamp_s=2.1)
    np.testing.assert_array_equal(track.centroid, before)


def test_person_search_validates_and_treats_nan_as_outside() -> None:
    with pytest.raises(ValueError):
        PersonSearch(x_min=5.0, x_max=1.0)
    with pytest.raises(ValueError):
        PersonSearch(floor_m=3.0)
    with pytest.raises(ValueError):
        PersonSearch(cell_m=0.0)
    points = np.array([[3.0, 0.0, 1.0], [np.nan, 0.0, 1.0], [3.0, np.nan, 1.0], [3.0, 0.0, np.nan]])
    np.testing.assert_array_equal(PersonSearch().contains(points), [True, False, False, False])


def test_person_with_outstretched_arms_beats_a_cabinet_farther_away() -> None:
    body = _person(x=3.2, height=1.75)
    arms = _box((3.1, -0.8, 1.35), (3.3, 0.8, 1.45))  # T-pose: 1.6 m arm span
    cabinet = _box((4.4, -0.4, 0.0), (4.8, 0.0, 1.55))
    person = np.concatenate([body, arms])
    assert find_person(np.concatenate([FLOOR, person, cabinet])).contains(person).all()


def _horizontal_centroid_error(out: np.ndarray, pelvis: np.ndarray) -> float:
    return float(np.hypot(*(out[:, :2].mean(axis=0) - pelvis[:2])))


@pytest.mark.slow
def test_person_found_over_pool_rigs() -> None:
    """Every rig of the pool once (32 sequences x 3 frames, subjects and actions spread over all four
    rooms, seed 0): the person preprocess_lidar keeps is centred within 0.3 m (horizontally) of the true
    pelvis in at least 95% of frames, and preprocess_depth finds a person in at least 95%.

    Measured on this sample (person.py of 2026-11-30 21:15): LiDAR 95/96 (99%), depth 96/96 succeed
    and 95/96 are centred on the pelvis (a successful depth frame can still hold the wrong object,
    hence a third check at 90%). Both misses are S26 A11 on pool13 in the E03 lab: the person with arms
    out lost to the lab's 1.6 m cabinet 1.5 m behind (since fixed: nearness now weighs most). Seeds 1
    and 2 of the same design measured 100% on all three counts. With the depth input as the person's
    base-frame points (2 cm voxel means), seed 0: depth 96/96 succeed, 96/96 centred (median 0.11 m,
    worst 0.29 m off the pelvis: the visible front surface, not the body's centre).
    """
    from midas_ros.preprocess import preprocess_depth
    from midas_ros.sim.generate import simulate_sequence
    from midas_ros.sim.rigs import rig_pool

    frames = lidar_ok = depth_ok = depth_centred = 0
    misses: list[str] = []
    for i, rig in enumerate(rig_pool()):
        subject, action = 1 + (5 * i) % 40, 1 + (7 * i) % 27
        seq = simulate_sequence(subject, action, 3, seed=0, rig=rig)
        for f in range(3):
            frames += 1
            pelvis = seq.joints[f, 0]
            where = f"S{subject:02d}A{action:02d} {rig.name} frame {f}"
            try:
                error = _horizontal_centroid_error(preprocess_lidar(seq.lidar[f], rig.lidar_pose), pelvis)
                lidar_ok += error < 0.3
                if error >= 0.3:
                    misses.append(f"lidar {where}: {error:.2f} m off")
            except PreprocessError as err:
                misses.append(f"lidar {where}: {err.reason}")
            try:
                points = preprocess_depth(seq.depth_mm[f], rig.depth_intrinsics, rig.depth_pose)
            except PreprocessError as err:
                misses.append(f"depth {where}: {err.reason}")
                continue
            depth_ok += 1
            error = _horizontal_centroid_error(points, pelvis)  # the points are in the base frame
            depth_centred += error < 0.3
            if error >= 0.3:
                misses.append(f"depth {where}: centred {error:.2f} m off")
    rates = f"lidar {lidar_ok}/{frames}, depth {depth_ok} (centred {depth_centred}); misses: {misses}"
    assert lidar_ok >= 0.95 * frames, rates
    assert depth_ok >= 0.95 * frames, rates
    assert depth_centred >= 0.9 * frames, rates

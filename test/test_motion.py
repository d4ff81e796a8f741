"""Simulated motion and body shape: where people stand and face, how they walk and turn, joint limits,
determinism, that a sequence only ever holds its own action, and the body's front/back shape cues."""

from __future__ import annotations

import numpy as np
import pytest

from midas_ros.sim import motions
from midas_ros.sim.body import (
    CUE_PARTS,
    NUM_PARAMS,
    PARAM_INDEX,
    PARAM_LIMITS,
    PARAM_LOWER,
    PARAM_NAMES,
    PARAM_UPPER,
    body_mesh,
    body_segments,
    forward_kinematics,
    make_body,
)
from midas_ros.sim.motions import (
    ACTIONS,
    REST_POSE,
    ActionSpec,
    Motion,
    action_params,
    heading_to_camera,
    sequence_motion,
)

SHORT = np.arange(15) / 10.0  # the training preset: 1.5 s at 10 Hz
LONG = np.arange(297) / 10.0  # a full MM-Fi sequence


def _wrap(angle):
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


@pytest.fixture(scope="module")
def short_motions() -> list[Motion]:
    return [sequence_motion(1 + i % 27, SHORT, np.random.default_rng([7, i])) for i in range(400)]


@pytest.fixture(scope="module")
def long_motions() -> list[Motion]:
    return [sequence_motion(1 + i % 27, LONG, np.random.default_rng([8, i])) for i in range(60)]


def test_three_quarters_start_facing_the_camera(short_motions) -> None:
    facing = np.array([m.facing for m in short_motions])
    off = np.array([abs(_wrap(m.headings[0] - heading_to_camera(m.positions[0]))) for m in short_motions])
    assert 0.68 < facing.mean() < 0.82
    assert np.all(off[facing] <= np.deg2rad(60.0) + 1e-9)
    # the other quarter takes any heading, so a third of it faces the camera too: 0.75 + 0.25 / 3
    assert 0.77 < np.mean(off <= np.deg2rad(60.0)) < 0.90
    others = off[~facing]
    assert np.mean(others > np.deg2rad(120.0)) > 0.2  # some turn their back to the camera
    assert np.ptp(others) > np.deg2rad(150.0)


def test_people_stay_in_view_and_move_at_walking_speed(short_motions, long_motions) -> None:
    for m, times in [(m, SHORT) for m in short_motions] + [(m, LONG) for m in long_motions]:
        x, y = m.positions[:, 0], m.positions[:, 1]
        assert m.positions.shape == (times.size, 2) and m.headings.shape == (times.size,)
        assert np.all((x >= 1.5) & (x <= 4.5) & (np.abs(y) <= 0.35 * x + 1e-9))
        assert 1.8 <= x[0] <= 4.0 and abs(y[0]) <= 0.3 * x[0] + 1e-9
        speed = np.hypot(*np.diff(m.positions, axis=0).T) / np.diff(times)
        assert speed.max(initial=0.0) <= 1.0 + 1e-6
        if m.moving == "stand":
            assert speed.max(initial=0.0) == 0.0
        assert np.all(np.abs(m.headings) <= np.pi + 1e-9)
        # turning smoothly: 180 deg in a second at the most, a little more when setting off to walk while
        # turning
        rate = np.abs(_wrap(np.diff(m.headings))) / np.diff(times)
        assert rate.max(initial=0.0) < np.deg2rad(450.0)
        if m.moving != "walk":
            assert rate.max(initial=0.0) < np.deg2rad(190.0)


def test_short_sequences_show_walking_and_turning(short_motions) -> None:
    kinds = {k: [m for m in short_motions if m.moving == k] for k in ("stand", "walk", "shuffle")}
    assert all(len(v) > 20 for v in kinds.values())
    walked = [np.hypot(*(m.positions[-1] - m.positions[0])) for m in kinds["walk"]]
    assert np.median(walked) > 0.3 and np.mean(np.array(walked) > 0.1) > 0.9
    shuffled = [np.hypot(*(m.positions[-1] - m.positions[0])) for m in kinds["shuffle"]]
    assert np.mean(np.array(shuffled) > 0.05) > 0.8
    turned = [
        abs(_wrap(m.headings[-1] - m.headings[0])) for m in short_motions if m.turning and m.moving == "stand"
    ]
    assert len(turned) > 20 and np.mean(np.array(turned) > np.deg2rad(20.0)) > 0.8


def test_turns_stay_within_half_a_turn_of_the_start(long_motions) -> None:
    for m in long_motions:
        if m.turning and m.moving == "stand":
            drift = np.unwrap(m.headings) - m.headings[0]
            assert np.abs(drift).max() <= np.pi + 1e-6


def test_walking_legs_alternate() -> None:
    for i in range(200):
        m = sequence_motion(13, LONG[:80], np.random.default_rng([9, i]))
        if m.moving == "walk" and not m.turning:
            break
    speed = np.r_[0.0, np.hypot(*np.diff(m.positions, axis=0).T) * 10]
    walking = speed > 0.25
    assert walking.sum() > 10
    stride = m.params[walking, PARAM_INDEX["l_hflex"]] - m.params[walking, PARAM_INDEX["r_hflex"]]
    assert stride.max() > np.deg2rad(8.0) and stride.min() < -np.deg2rad(8.0)
    # walking faces the way it goes
    direction = np.arctan2(*np.diff(m.positions, axis=0).T[::-1])[walking[1:]]
    assert np.median(np.abs(_wrap(direction - m.headings[1:][walking[1:]]))) < np.deg2rad(30.0)


def test_joint_limits_hold(short_motions, long_motions) -> None:
    assert set(PARAM_LIMITS) == set(PARAM_NAMES) and PARAM_LOWER.shape == (NUM_PARAMS,)
    assert np.all(PARAM_LOWER < PARAM_UPPER)
    for m in short_motions + long_motions:
        assert m.params.shape[1] == NUM_PARAMS
        assert np.all((m.params >= PARAM_LOWER) & (m.params <= PARAM_UPPER))
    # the limits leave the action templates room: the rest pose is inside, and a template's samples are
    # (nearly all) inside before any clipping
    rest = np.zeros(NUM_PARAMS)
    for name, value in REST_POSE.items():
        rest[PARAM_INDEX[name]] = np.deg2rad(value)
    assert np.all((rest >= PARAM_LOWER) & (rest <= PARAM_UPPER))
    for action in ACTIONS:
        params = action_params(action, LONG[:60], np.random.default_rng(action))
        assert np.mean((params >= PARAM_LOWER) & (params <= PARAM_UPPER)) > 0.995


def test_same_seed_same_motion_other_seed_other_motion() -> None:
    a = sequence_motion(9, LONG[:50], np.random.default_rng(123))
    b = sequence_motion(9, LONG[:50], np.random.default_rng(123))
    c = sequence_motion(9, LONG[:50], np.random.default_rng(124))
    for field in ("params", "positions", "headings"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert (a.facing, a.moving, a.turning, a.blend) == (b.facing, b.moving, b.turning, b.blend)
    assert not np.allclose(a.params, c.params)
    # a shifted time axis is just as good (times need not start at 0)
    d = sequence_motion(9, LONG[:50] + 100.0, np.random.default_rng(123))
    assert d.params.shape == a.params.shape and np.all(np.isfinite(d.params))


def test_bad_times_are_refused() -> None:
    with pytest.raises(ValueError):
        sequence_motion(1, np.array([]), np.random.default_rng(0))
    with pytest.raises(ValueError):
        sequence_motion(1, np.array([0.0, 0.2, 0.1]), np.random.default_rng(0))
    with pytest.raises(ValueError):
        sequence_motion(28, SHORT, np.random.default_rng(0))
    one = sequence_motion(3, np.zeros(1), np.random.default_rng(0))
    assert one.params.shape == (1, NUM_PARAMS) and one.positions.shape == (1, 2)


def test_a_sequence_only_ever_holds_its_own_action(monkeypatch) -> None:
    """Every action's cycle is wrapped to record its calls: generating action A calls A's alone."""
    called: list[int] = []

    def recording(action: int, spec: ActionSpec) -> ActionSpec:
        def cycle(u, k):
            called.append(action)
            return spec.cycle(u, k)

        return ActionSpec(cycle, spec.period_s)

    monkeypatch.setattr(motions, "ACTIONS", {a: recording(a, s) for a, s in ACTIONS.items()})
    blends = set()
    for action in (4, 9, 17, 26):
        for i in range(40):
            called.clear()
            m = sequence_motion(action, LONG[:40], np.random.default_rng([action, i]))
            assert called and set(called) == {action}
            blends.add(m.blend)
    assert blends == {"none", "mix", "chain"}


def test_forward_kinematics_takes_a_path() -> None:
    body = make_body(4)
    m = sequence_motion(12, SHORT, np.random.default_rng(5))
    joints = forward_kinematics(body, m.params, m.positions, m.headings)
    for f in (0, 7, 14):
        one = forward_kinematics(body, m.params[f : f + 1], tuple(m.positions[f]), float(m.headings[f]))
        assert np.allclose(joints[f], one[0])
    assert np.allclose(joints[:, 0, :2], m.positions, atol=0.5)  # the pelvis follows the path


def _standing(body, heading: float) -> np.ndarray:
    params = np.zeros((1, NUM_PARAMS))
    for name, value in REST_POSE.items():
        params[0, PARAM_INDEX[name]] = np.deg2rad(value)
    return forward_kinematics(body, params, (3.0, 0.5), heading)[0]


@pytest.mark.parametrize("heading", [0.0, 2.0, -2.8])
def test_shape_cues_sit_on_the_right_side_of_the_body(heading: float) -> None:
    body = make_body(11)
    joints = _standing(body, heading)
    facing = np.array([np.cos(heading), np.sin(heading), 0.0])
    seg = body_segments(joints, body)
    n_base = seg.start.shape[1] - len(CUE_PARTS)
    assert n_base == 18 and seg.cue.tolist() == [False] * 18 + [True] * len(CUE_PARTS)

    def part(name: str) -> tuple[np.ndarray, np.ndarray]:
        i = n_base + CUE_PARTS.index(name)
        return seg.start[0, i], seg.end[0, i]

    def ahead(point: np.ndarray, of: np.ndarray) -> float:
        return float((point - of) @ facing)

    head_centre = 0.5 * (joints[9] + joints[10])
    nose_tip = part("nose")[1]
    assert ahead(nose_tip, head_centre) > 0.08 and ahead(nose_tip, joints[9]) > 0.08
    assert ahead(part("face")[0], joints[9]) > 0.03
    assert ahead(part("chest")[0], joints[8]) > 0.02
    mid_hip = 0.5 * (joints[1] + joints[4])
    spine = joints[7]
    for side in ("left", "right"):
        assert ahead(part(f"{side}_shoulder_blade")[0], spine) < -0.05
        assert ahead(part(f"{side}_buttock")[0], mid_hip) < -0.04
    for heel, ankle in (("left_heel", 6), ("right_heel", 3)):
        end = part(heel)[1]
        assert ahead(end, joints[ankle]) < -0.03  # behind the ankle, the toes are in front
        assert end[2] < joints[ankle][2] - 0.02  # and below it

    # the surface itself: the face and nose reach 2 cm further forward than the cue-free head, the back
    # of the skull stays where it was; the buttocks reach further back than the cue-free hips
    def extent(cues: bool, z_range: tuple[float, float]) -> tuple[float, float]:
        verts, _ = body_mesh(joints, body, cues)
        near = np.linalg.norm(verts[:, :2] - joints[0, :2], axis=1) < 0.25  # not the hands
        near &= (verts[:, 2] > z_range[0]) & (verts[:, 2] < z_range[1])
        rel = (verts[near] - joints[0]) @ facing
        return rel.max(), rel.min()

    head = (joints[9, 2] - 0.05, joints[10, 2] + 0.1)  # mouth to the top of the head
    (front, back), (old_front, old_back) = extent(True, head), extent(False, head)
    assert front > old_front + 0.02 and back == pytest.approx(old_back, abs=0.002)
    hips = (mid_hip[2] - 0.12, mid_hip[2] + 0.02)
    assert extent(True, hips)[1] < extent(False, hips)[1] - 0.02


def test_cue_free_body_is_the_old_body_and_the_mesh_stays_small() -> None:
    body = make_body(2)
    joints = _standing(body, 0.7)
    old = body_segments(joints, body, cues=False)
    assert old.start.shape[1] == 18 and not old.cue.any()
    verts, tris = body_mesh(joints, body)
    old_verts, old_tris = body_mesh(joints, body, cues=False)
    assert verts.shape[0] <= 1.6 * old_verts.shape[0] and tris.shape[0] <= 1.6 * old_tris.shape[0]
    assert verts.dtype == np.float32 and tris.dtype == np.uint32 and tris.max() < verts.shape[0]
    assert np.all(np.isfinite(verts))
    # the cue-free body's first parts are unchanged by the cues except the two trunk capsules (moved)
    new = body_segments(joints, body)
    assert np.allclose(new.start[:, 2:18], old.start[:, 2:18])

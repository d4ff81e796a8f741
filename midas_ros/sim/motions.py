"""The 27 MM-Fi actions as pose-parameter trajectories (see body.PARAM_NAMES), and whole sequences.

Each action is one repetition cycle written as a function of the phase u in [0, 1]. A performance
(`action_params`) strings repetitions together with their own tempo, amplitude and a short pause, and
adds slow postural sway, so no two repetitions are identical. Right-side actions are the mirror images
of the left-side ones.

`sequence_motion` makes a whole sequence: the performance, blended with another performance of the same
action, random joint-angle movement within the joint limits (body.PARAM_LIMITS), and where the person
stands, walks and turns in front of the rig (base frame, midas_ros.rig).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from midas_ros.mmfi.layout import ACTION_NAMES
from midas_ros.sim.body import NUM_PARAMS, PARAM_INDEX, PARAM_LOWER, PARAM_UPPER

Cycle = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]

# Standing rest pose: arms hang slightly away from the body, soft elbows and knees (degrees / metres).
REST_POSE: dict[str, float] = {
    "l_abd": 8.0,
    "r_abd": 8.0,
    "l_elb": 12.0,
    "r_elb": 12.0,
    "l_knee": 4.0,
    "r_knee": 4.0,
    "l_hflex": 2.0,
    "r_hflex": 2.0,
    "neck": 5.0,
}
_METRES = {"dx", "dy", "jump"}


def keyframes(u: np.ndarray, knots: list[float], values: list[float]) -> np.ndarray:
    """Smooth (ease-in-out) interpolation of values at phase knots."""
    pos = np.interp(u, knots, np.arange(len(knots), dtype=np.float64))
    i = np.minimum(np.floor(pos).astype(int), len(knots) - 2)
    f = pos - i
    f = f * f * (3.0 - 2.0 * f)
    v = np.asarray(values, dtype=np.float64)
    return v[i] + (v[i + 1] - v[i]) * f


def bump(u: np.ndarray, hold: float = 0.3) -> np.ndarray:
    """0 -> 1, held for `hold` of the cycle, -> 0."""
    r = 0.5 * (1.0 - hold)
    return keyframes(u, [0.0, r, 1.0 - r, 1.0], [0.0, 1.0, 1.0, 0.0])


# --- one cycle of each left-handed or symmetric action: (u, rep index) -> parameter offsets ----------


def _stretch(u, k):
    b = bump(u, 0.35)
    return {"l_flex": 165 * b, "r_flex": 165 * b, "l_elb": -10 * b, "r_elb": -10 * b, "bend": -10 * b,
            "neck": -15 * b, "jump": 0.04 * b}  # fmt: skip


def _chest_horizontal(u, k):
    b = bump(u, 0.25)
    arms = keyframes(u, [0.0, 0.15, 0.85, 1.0], [0.0, 1.0, 1.0, 0.0])  # lift to shoulder height
    out = {"bend": -5 * b}
    for s in "lr":
        out |= {f"{s}_flex": 85 * arms, f"{s}_elb": 90 * arms - 75 * b, f"{s}_hz": -15 * arms + 95 * b}
    return out


def _chest_vertical(u, k):
    b = bump(u, 0.25)
    out = {"bend": -6 * b, "neck": -8 * b}
    for s in "lr":
        out |= {f"{s}_abd": 80 + 85 * b, f"{s}_elb": 85 * (1 - b), f"{s}_rot": 70 * (1 - b)}
    return out


def _twist_left(u, k):
    b = bump(u, 0.25)
    arms = {}
    for s in "lr":
        arms |= {f"{s}_flex": 80.0 + 0 * u, f"{s}_elb": 100.0 + 0 * u, f"{s}_abd": 15.0 + 0 * u}
    return arms | {"twist": 55 * b, "yaw": 8 * b, "neck": 0 * u}


def _mark_time(u, k):
    left = np.maximum(0.0, np.sin(2 * np.pi * u))
    right = np.maximum(0.0, -np.sin(2 * np.pi * u))
    return {"l_hflex": 55 * left, "l_knee": 75 * left, "r_hflex": 55 * right, "r_knee": 75 * right,
            "l_flex": 35 * right - 15 * left, "r_flex": 35 * left - 15 * right, "l_elb": 40 + 0 * u,
            "r_elb": 40 + 0 * u}  # fmt: skip


def _limb_extension_left(u, k):
    b = bump(u, 0.3)
    return {"l_abd": 150 * b, "l_elb": -8 * b, "l_habd": 40 * b, "lat": -8 * b}


def _limb_extension_both(u, k):
    b = bump(u, 0.3)
    leg = "l" if k[0] % 2 == 0 else "r"
    return {"l_abd": 150 * b, "r_abd": 150 * b, "l_elb": -8 * b, "r_elb": -8 * b, f"{leg}_habd": 35 * b}


def _lunge_left_front(u, k):
    # front (left) thigh near horizontal over a vertical shin, back knee down: the front foot is planted
    b = bump(u, 0.3)
    direction = np.deg2rad(35.0)
    return {"dx": 0.35 * np.cos(direction) * b, "dy": 0.35 * np.sin(direction) * b, "l_hflex": 70 * b,
            "l_habd": 20 * b, "l_knee": 75 * b, "r_hflex": -15 * b, "r_knee": 70 * b, "bend": 10 * b,
            "l_abd": 25 * b, "r_abd": 25 * b, "l_elb": 80 * b, "r_elb": 80 * b}  # fmt: skip


def _squat(u, k):
    b = bump(u, 0.25)
    # the pelvis sits back so the feet stay under the body
    return {"l_hflex": 95 * b, "r_hflex": 95 * b, "l_knee": 110 * b, "r_knee": 110 * b, "bend": 35 * b,
            "dx": -0.25 * b, "l_flex": 85 * b, "r_flex": 85 * b, "l_elb": -8 * b,
            "r_elb": -8 * b}  # fmt: skip


def _raise_left(u, k):
    b = bump(u, 0.3)
    return {"l_flex": 170 * b, "l_elb": -8 * b, "l_abd": 8 * b}


def _lunge_left_side(u, k):
    # step out to the left and bend the left knee; the right leg stays straight, slanting out
    b = bump(u, 0.3)
    return {"dy": 0.3 * b, "l_habd": 20 * b, "l_hflex": 50 * b, "l_knee": 85 * b, "r_habd": 40 * b,
            "bend": 15 * b, "l_flex": 60 * b, "r_flex": 60 * b}  # fmt: skip


def _wave_left(u, k):
    b = bump(u, 0.6)
    return {"l_abd": 80 * b, "l_rot": 90 * b, "l_elb": (58 + 28 * np.sin(2 * np.pi * 3 * u)) * b}


def _pick_up(u, k):
    b = bump(u, 0.2)
    return {"bend": 75 * b, "l_hflex": 30 * b, "r_hflex": 30 * b, "l_knee": 45 * b, "r_knee": 45 * b,
            "r_flex": 70 * b, "l_flex": 40 * b, "neck": 20 * b}  # fmt: skip


def _throw_left(u, k):
    # the right arm winds up behind, then throws across towards the left
    knots = [0.0, 0.4, 0.55, 0.7, 1.0]
    return {
        "r_flex": keyframes(u, knots, [0, -40, 120, 60, 0]),
        "r_abd": keyframes(u, knots, [0, 45, 20, 10, 0]),
        "r_elb": keyframes(u, knots, [0, 95, 10, 30, 0]),
        "twist": keyframes(u, knots, [0, -30, 40, 20, 0]),
        "bend": keyframes(u, knots, [0, -5, 20, 10, 0]),
        "l_flex": keyframes(u, knots, [0, 40, 0, 0, 0]),
    }


def _kick_left(u, k):
    b = bump(u, 0.1)
    return {"l_habd": 50 * b, "l_hflex": 30 * b, "l_knee": 15 * (1 - b) * bump(u, 0.6), "lat": -10 * b,
            "l_abd": 30 * b, "r_abd": 30 * b}  # fmt: skip


def _body_extension_left(u, k):
    b = bump(u, 0.3)
    return {"lat": 30 * b, "r_abd": 160 * b, "r_elb": 10 * b, "l_elb": 60 * b, "l_abd": 20 * b}


def _jump(u, k):
    knots = [0.0, 0.25, 0.35, 0.5, 0.6, 0.72, 1.0]
    bend = keyframes(u, knots, [0, 1, 0, 0, 0.8, 0, 0])
    flight = np.clip((u - 0.35) / 0.25, 0.0, 1.0)
    return {
        "jump": 0.28 * np.sin(np.pi * flight),
        "l_hflex": 45 * bend,
        "r_hflex": 45 * bend,
        "l_knee": 60 * bend,
        "r_knee": 60 * bend,
        "bend": 25 * bend,
        "l_flex": keyframes(u, knots, [0, -35, 150, 150, 20, 0, 0]),
        "r_flex": keyframes(u, knots, [0, -35, 150, 150, 20, 0, 0]),
    }


def _bow(u, k):
    b = bump(u, 0.3)
    return {"bend": 60 * b, "neck": 20 * b, "l_flex": 50 * b, "r_flex": 50 * b, "l_hflex": 5 * b,
            "r_hflex": 5 * b}  # fmt: skip


def _mirror(cycle: Cycle) -> Cycle:
    """The same movement done with the other side of the body."""

    def mirrored(u: np.ndarray, k: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, value in cycle(u, k).items():
            if name[:2] in ("l_", "r_"):
                name = ("r_" if name[0] == "l" else "l_") + name[2:]
            elif name in ("dy", "yaw", "lat", "twist"):
                value = -value
            out[name] = value
        return out

    return mirrored


@dataclass(frozen=True)
class ActionSpec:
    cycle: Cycle
    period_s: float  # mean duration of one repetition


ACTIONS: dict[int, ActionSpec] = {
    1: ActionSpec(_stretch, 4.0),
    2: ActionSpec(_chest_horizontal, 3.0),
    3: ActionSpec(_chest_vertical, 3.0),
    4: ActionSpec(_twist_left, 3.0),
    5: ActionSpec(_mirror(_twist_left), 3.0),
    6: ActionSpec(_mark_time, 1.2),
    7: ActionSpec(_limb_extension_left, 3.0),
    8: ActionSpec(_mirror(_limb_extension_left), 3.0),
    9: ActionSpec(_lunge_left_front, 3.2),
    10: ActionSpec(_mirror(_lunge_left_front), 3.2),
    11: ActionSpec(_limb_extension_both, 3.0),
    12: ActionSpec(_squat, 3.0),
    13: ActionSpec(_raise_left, 2.6),
    14: ActionSpec(_mirror(_raise_left), 2.6),
    15: ActionSpec(_lunge_left_side, 3.2),
    16: ActionSpec(_mirror(_lunge_left_side), 3.2),
    17: ActionSpec(_wave_left, 3.5),
    18: ActionSpec(_mirror(_wave_left), 3.5),
    19: ActionSpec(_pick_up, 3.6),
    20: ActionSpec(_throw_left, 2.6),
    21: ActionSpec(_mirror(_throw_left), 2.6),
    22: ActionSpec(_kick_left, 1.8),
    23: ActionSpec(_mirror(_kick_left), 1.8),
    24: ActionSpec(_body_extension_left, 3.4),
    25: ActionSpec(_mirror(_body_extension_left), 3.4),
    26: ActionSpec(_jump, 2.2),
    27: ActionSpec(_bow, 3.2),
}
assert set(ACTIONS) == set(ACTION_NAMES)


def smooth_noise(rng: np.random.Generator, times: np.ndarray, size: int, scale: float, corr_s: float):
    """(len(times), size) smooth random signal with standard deviation ~scale and correlation time corr_s."""
    knots = np.arange(times[0] - corr_s, times[-1] + 2 * corr_s, corr_s)
    values = rng.normal(0.0, scale, size=(knots.size, size))
    return np.stack([np.interp(times, knots, values[:, i]) for i in range(size)], axis=1)


def action_params(action: int, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pose parameters (len(times), NUM_PARAMS) of one performance of an action at the given times (s).

    Repetitions vary in tempo (+-25 %), amplitude (80..110 %) and pause; the sequence starts at a random
    point of a repetition; slow sway and small joint-angle noise are added on top.
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of 1..27, got {action}")
    spec = ACTIONS[action]
    tempo = rng.uniform(0.85, 1.15)  # this person's own pace
    total = times[-1] - times[0] + spec.period_s * 3
    starts, durations, pauses, amps = [], [], [], []
    t = -rng.uniform(0.0, spec.period_s)
    while t < total:
        duration = spec.period_s * tempo * rng.uniform(0.8, 1.25)
        pause = rng.uniform(0.0, 0.5)
        starts.append(t)
        durations.append(duration)
        pauses.append(pause)
        amps.append(rng.uniform(0.8, 1.1))
        t += duration + pause
    starts, durations, amps = np.array(starts), np.array(durations), np.array(amps)
    local = times - times[0]
    rep = np.searchsorted(starts, local, side="right") - 1
    u = np.clip((local - starts[rep]) / durations[rep], 0.0, 1.0)

    params = np.zeros((times.size, NUM_PARAMS))
    for name, value in REST_POSE.items():
        params[:, PARAM_INDEX[name]] = np.deg2rad(value)
    # evaluate the cycle repetition by repetition so per-repetition choices (e.g. which leg) hold
    for r in np.unique(rep):
        sel = rep == r
        offsets = spec.cycle(u[sel], np.full(sel.sum(), r))
        for name, value in offsets.items():
            value = np.broadcast_to(np.asarray(value, dtype=np.float64), (sel.sum(),)) * amps[r]
            params[sel, PARAM_INDEX[name]] += value if name in _METRES else np.deg2rad(value)

    angles = [i for n, i in PARAM_INDEX.items() if n not in _METRES]
    params[:, angles] += np.deg2rad(smooth_noise(rng, times, len(angles), 2.5, 0.8))
    sway = smooth_noise(rng, times, 2, 0.015, 1.5)
    params[:, PARAM_INDEX["dx"]] += sway[:, 0]
    params[:, PARAM_INDEX["dy"]] += sway[:, 1]
    return params


# --- whole sequences: performance, perturbation, blending, walking and turning ---------------------------

# Where people stand, base frame (x forward from the depth camera's floor point, y left), metres: spots
# are drawn with x in SPOT_X_M and |y| <= SPOT_Y_PER_X * x (inside a ~60 deg wide view); walking goes in
# straight lines between such spots, so the path never leaves that convex region, which lies inside the
# bounds BOUNDS_X_M, |y| <= BOUNDS_Y_PER_X * x (kept as a hard clip too).
SPOT_X_M = (1.8, 4.0)
SPOT_Y_PER_X = 0.3
BOUNDS_X_M = (1.5, 4.5)
BOUNDS_Y_PER_X = 0.35
# Heading: FACING_PROBABILITY of the sequences start facing the camera within FACING_HALF_ANGLE_DEG, the
# rest take any heading (uniform), as people around a robot do (MM-Fi's people all face the rig).
FACING_PROBABILITY = 0.75
FACING_HALF_ANGLE_DEG = 60.0
# Moving: walking between spots (heading turns into the walking direction, and back after arriving) or a
# shuffle (short steps in any direction, heading kept).
MOVE_PROBABILITY = 0.4
SHUFFLE_SHARE = 0.3
WALK_SPEED_MPS = (0.3, 1.0)
SHUFFLE_SPEED_MPS = (0.1, 0.3)
SHUFFLE_STEP_M = (0.2, 0.6)
PAUSE_S = (1.0, 4.0)  # standing between two walks
# Turning: turns at 45..120 deg/s to a new heading within +-180 deg of the starting one, every few s.
TURN_PROBABILITY = 0.35
TURN_RATE_DEG_S = (45.0, 120.0)
TURN_GAP_S = (2.0, 8.0)
# Blending with another performance of the same action: a constant mix, or a cross-fade (chain).
BLEND_PROBABILITY = 0.3
# Random joint-angle movement on top of the action: per-parameter amplitude (deg) at full strength.
PERTURB_DEG: dict[str, float] = {
    "yaw": 4.0,
    "bend": 6.0,
    "lat": 4.0,
    "twist": 8.0,
    "neck": 10.0,
    **{f"{s}_{n}": a for s in "lr" for n, a in (("flex", 18.0), ("abd", 14.0), ("hz", 12.0), ("rot", 15.0),
                                               ("elb", 20.0), ("hflex", 6.0), ("habd", 4.0),
                                               ("knee", 8.0))},
}  # fmt: skip
_FINE_DT_S = 0.02  # time step of the path's integration
_RAMP_S = 0.6  # speeding up from standing to walking, and slowing down
_WALK_TURN_S = 1.0  # turning into the walking direction when setting off, and back after arriving


@dataclass(frozen=True)
class Motion:
    """One sequence's motion: pose parameters and the pelvis' path on the floor, base frame.

    Joints: body.forward_kinematics(body, m.params, m.positions, m.headings).
    """

    params: np.ndarray  # (F, NUM_PARAMS) radians / metres, inside body.PARAM_LIMITS
    positions: np.ndarray  # (F, 2) metres: x forward from the depth camera's floor point, y left
    headings: np.ndarray  # (F,) radians in (-pi, pi]: 0 faces +x (away from the camera), pi faces it
    facing: bool  # drawn among the sequences that start facing the camera
    moving: str  # "stand", "walk" or "shuffle"
    turning: bool
    blend: str  # "none", "mix" or "chain" (always with the same action)


def _wrap(angle: np.ndarray | float) -> np.ndarray:
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def draw_spot(rng: np.random.Generator) -> np.ndarray:
    """A standing spot (x, y) in front of the camera (SPOT_X_M, |y| <= SPOT_Y_PER_X * x)."""
    x = rng.uniform(*SPOT_X_M)
    return np.array([x, rng.uniform(-SPOT_Y_PER_X * x, SPOT_Y_PER_X * x)])


def _in_spot_region(p: np.ndarray) -> bool:
    return SPOT_X_M[0] <= p[0] <= SPOT_X_M[1] and abs(p[1]) <= SPOT_Y_PER_X * p[0]


def heading_to_camera(position: np.ndarray) -> np.ndarray:
    """Heading (rad) that faces the depth camera (at the base origin) from position (..., 2)."""
    position = np.asarray(position, dtype=np.float64)
    return np.arctan2(-position[..., 1], -position[..., 0])


def _walk_legs(
    rng: np.random.Generator, start: np.ndarray, t0: float, t1: float, shuffle: bool
) -> list[tuple[float, float, np.ndarray, np.ndarray]]:
    """(departure, arrival, from, to) of the walks within [t0, t1]: the first soon after t0 so that
    short sequences show it, then a pause and the next."""
    legs = []
    t = t0 + rng.uniform(0.0, min(2.0, 0.4 * (t1 - t0)))
    here = start
    while t < t1:
        if shuffle:
            for _ in range(20):
                angle = rng.uniform(-np.pi, np.pi)
                there = here + rng.uniform(*SHUFFLE_STEP_M) * np.array([np.cos(angle), np.sin(angle)])
                if _in_spot_region(there):
                    break
            else:
                there = here + 0.5 * (np.array([2.9, 0.0]) - here)  # towards the middle of the view
            speed = rng.uniform(*SHUFFLE_SPEED_MPS)
        else:
            for _ in range(20):
                there = draw_spot(rng)
                if np.hypot(*(there - here)) >= 0.6:
                    break
            speed = rng.uniform(*WALK_SPEED_MPS)
        # speed is the cruising speed, reached after a ramp of _RAMP_S (see _path)
        duration = np.hypot(*(there - here)) / speed + _RAMP_S
        legs.append((t, t + duration, here, there))
        here = there
        t += duration + rng.uniform(*PAUSE_S)
    return legs


def _path(fine: np.ndarray, start: np.ndarray, legs) -> np.ndarray:
    """(len(fine), 2) positions: standing at start, then along each leg, speeding up and slowing down
    linearly over _RAMP_S (trapezoidal speed; a leg shorter than two ramps never reaches its cruise)."""
    pos = np.broadcast_to(start, (fine.size, 2)).copy()
    for t_dep, t_arr, a, b in legs:
        duration = t_arr - t_dep
        r = min(0.5, _RAMP_S / duration)  # ramp, as a fraction of the leg
        tau = np.clip((fine - t_dep) / duration, 0.0, 1.0)
        s = np.where(
            tau < r,
            tau**2 / (2 * r),
            np.where(tau > 1 - r, 1 - r - (1 - tau) ** 2 / (2 * r), r / 2 + (tau - r)),
        ) / (1 - r)
        after = fine >= t_dep
        pos[after] = a + s[after, None] * (b - a)
    return pos


def _turn_offsets(rng: np.random.Generator, fine: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Heading change from the start (rad) over fine times: turns to new offsets within +-180 deg."""
    offset = np.zeros(fine.size)
    current = 0.0
    t = t0 + rng.uniform(0.0, min(5.0, 0.6 * (t1 - t0)))
    while t < t1:
        new = rng.uniform(-np.pi, np.pi)
        if abs(new - current) < np.deg2rad(30.0):  # a turn worth the name
            new = float(np.clip(current + np.sign(new - current + 1e-12) * np.deg2rad(30.0), -np.pi, np.pi))
        duration = abs(new - current) / np.deg2rad(rng.uniform(*TURN_RATE_DEG_S))
        offset += (new - current) * _smoothstep((fine - t) / max(duration, 1e-3))
        current = new
        t += duration + rng.uniform(*TURN_GAP_S)
    return offset


def _gait(
    params: np.ndarray, speed: np.ndarray, direction: np.ndarray, phase: np.ndarray, step: np.ndarray
) -> np.ndarray:
    """Legs (and arm swing) of walking at speed (F,) m/s along direction (F, 2) in the body frame
    (forward, left; unit), gait phase (F,) rad and step length (F,) m, blended in as the person moves."""
    out = params.copy()
    g = _smoothstep(speed / 0.15)[:, None]  # 0 standing .. 1 walking
    fwd, lat = direction[:, 0], np.abs(direction[:, 1])
    swing = np.arctan(0.5 * step / 0.85)  # hip flexion amplitude of that step length (rad)
    knee_lift = np.deg2rad(15.0) + np.deg2rad(45.0) * np.clip(step / 0.7, 0.0, 1.0)
    legs = np.zeros_like(params)
    for side, shift in (("l", 0.0), ("r", np.pi)):
        phi = phase + shift
        legs[:, PARAM_INDEX[f"{side}_hflex"]] = fwd * swing * np.sin(phi) + np.deg2rad(5.0)
        legs[:, PARAM_INDEX[f"{side}_habd"]] = lat * np.deg2rad(12.0) * (0.5 + 0.5 * np.sin(phi))
        legs[:, PARAM_INDEX[f"{side}_knee"]] = (
            np.deg2rad(6.0) + knee_lift * np.maximum(0.0, np.cos(phi + np.pi / 6)) ** 2
        )
        # the arm on this side swings with the other leg
        out[:, PARAM_INDEX[f"{side}_flex"]] -= g[:, 0] * 0.6 * fwd * swing * np.sin(phi)
    leg_cols = [PARAM_INDEX[f"{s}_{n}"] for s in "lr" for n in ("hflex", "habd", "knee")]
    out[:, leg_cols] = (1 - g) * params[:, leg_cols] + g * legs[:, leg_cols]
    for name, keep in (("dx", 0.0), ("dy", 0.0), ("jump", 0.0), ("bend", 0.3)):
        out[:, PARAM_INDEX[name]] *= 1 - (1 - keep) * g[:, 0]
    return out


def sequence_motion(action: int, times: np.ndarray, rng: np.random.Generator) -> Motion:
    """The motion of one sequence of `action` at times (F,) seconds (any start, increasing).

    - pose: a performance of the action (action_params); with BLEND_PROBABILITY blended with a second
      performance of the same action (another tempo, phase and amplitude), as a constant mix or a
      cross-fade; never with another action, so a sequence holds its own action only (the cross-action
      test split relies on that). Smooth random joint-angle movement on top (strength drawn per
      sequence, PERTURB_DEG at most), then everything clipped to body.PARAM_LIMITS.
    - place: a spot in front of the camera (draw_spot); FACING_PROBABILITY of the sequences start facing
      the camera within FACING_HALF_ANGLE_DEG, the others any heading.
    - with MOVE_PROBABILITY the person walks between spots (0.3..1 m/s, turning into the walking direction
      and back; legs in a walking cycle) or shuffles (short slow steps, heading kept), starting early
      enough that a 1.5 s sequence shows it, pausing 1..4 s between walks of a long one; with
      TURN_PROBABILITY the heading turns (45..120 deg/s) to new directions within +-180 deg of the start.

    All randomness comes from rng: the same rng state gives the same motion.
    """
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size < 1:
        raise ValueError(f"times must be a non-empty 1-D array, got shape {times.shape}")
    if times.size > 1 and np.any(np.diff(times) <= 0):
        raise ValueError("times must be increasing")
    t0, t1 = float(times[0]), float(times[-1])

    params = action_params(action, times, rng)
    blend = "none"
    if rng.random() < BLEND_PROBABILITY:
        other = action_params(action, times, rng)
        if rng.random() < 0.5:
            blend, weight = "mix", np.full(times.size, rng.uniform(0.2, 0.5))
        else:
            centre = rng.uniform(t0, max(t1, t0 + 1e-3))
            width = rng.uniform(0.5, 2.0)
            blend, weight = "chain", _smoothstep((times - centre) / width + 0.5)
        params = (1 - weight[:, None]) * params + weight[:, None] * other

    strength = rng.uniform(0.2, 1.0)
    names = list(PERTURB_DEG)
    wobble = smooth_noise(rng, times, len(names), 1.0, rng.uniform(0.6, 2.0))
    for i, name in enumerate(names):
        params[:, PARAM_INDEX[name]] += np.deg2rad(PERTURB_DEG[name]) * strength * wobble[:, i]

    start = draw_spot(rng)
    facing = bool(rng.random() < FACING_PROBABILITY)
    if facing:
        half = np.deg2rad(FACING_HALF_ANGLE_DEG)
        heading0 = float(heading_to_camera(start)) + half * (2 * rng.beta(2.0, 2.0) - 1)
    else:
        heading0 = rng.uniform(-np.pi, np.pi)

    # the path and heading at a fine step, then sampled at the frame times
    fine = np.arange(t0, t1 + _FINE_DT_S, _FINE_DT_S)
    moving = "stand"
    legs = []
    if rng.random() < MOVE_PROBABILITY:
        moving = "shuffle" if rng.random() < SHUFFLE_SHARE else "walk"
        legs = _walk_legs(rng, start, t0, t1, moving == "shuffle")
    turning = bool(rng.random() < TURN_PROBABILITY)
    base = heading0 + (_turn_offsets(rng, fine, t0, t1) if turning else 0.0)
    path = _path(fine, start, legs)
    heading = np.broadcast_to(base, fine.shape).astype(np.float64)
    if moving == "walk":  # walk facing the way, then turn back (legs never overlap: pauses >= 1 s)
        turn_to = np.zeros(fine.size)
        for t_dep, t_arr, a, b in legs:
            ramp = np.minimum((fine - t_dep) / _WALK_TURN_S, (t_arr + _WALK_TURN_S - fine) / _WALK_TURN_S)
            # the turn from the heading at departure to the walking direction, the short way round,
            # followed continuously should the person also be turning
            raw = np.arctan2(b[1] - a[1], b[0] - a[0]) - base
            at_departure = np.interp(t_dep, fine, np.broadcast_to(raw, fine.shape))
            turn_to += _smoothstep(ramp) * (raw - 2 * np.pi * np.round(at_departure / (2 * np.pi)))
        heading = base + turn_to

    # gait from the path: speed, walking direction in the body frame, phase from the cadence
    velocity = np.gradient(path, _FINE_DT_S, axis=0) if fine.size > 1 else np.zeros((1, 2))
    speed = np.hypot(velocity[:, 0], velocity[:, 1])
    step = np.clip(0.25 + 0.45 * speed, 0.25, 0.7)
    phase = 2 * np.pi * np.cumsum(speed / (2 * step)) * _FINE_DT_S + rng.uniform(0, 2 * np.pi)
    c, s = np.cos(heading), np.sin(heading)
    body_dir = np.stack(
        [c * velocity[:, 0] + s * velocity[:, 1], -s * velocity[:, 0] + c * velocity[:, 1]], 1
    )
    body_dir /= np.maximum(np.hypot(body_dir[:, 0], body_dir[:, 1]), 1e-9)[:, None]

    def at_frames(values: np.ndarray) -> np.ndarray:
        if fine.size == 1:
            return np.repeat(values[:1], times.size, axis=0)
        if values.ndim == 1:
            return np.interp(times, fine, values)
        return np.stack([np.interp(times, fine, values[:, i]) for i in range(values.shape[1])], axis=1)

    if moving != "stand":
        direction = at_frames(body_dir)
        direction /= np.maximum(np.hypot(direction[:, 0], direction[:, 1]), 1e-9)[:, None]
        params = _gait(params, at_frames(speed), direction, at_frames(phase), at_frames(step))
    params = np.clip(params, PARAM_LOWER, PARAM_UPPER)

    positions = at_frames(path)
    positions[:, 0] = np.clip(positions[:, 0], *BOUNDS_X_M)
    limit = BOUNDS_Y_PER_X * positions[:, 0]
    positions[:, 1] = np.clip(positions[:, 1], -limit, limit)
    # unwrapped interpolation, then wrapped to (-pi, pi]
    headings = -_wrap(-at_frames(np.unwrap(heading)))
    return Motion(params, positions, headings, facing, moving, turning, blend)

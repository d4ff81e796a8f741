"""The 27 MM-Fi actions as pose-parameter trajectories (see body.PARAM_NAMES).

Each action is one repetition cycle written as a function of the phase u in [0, 1]. A sequence strings
repetitions together with their own tempo, amplitude and a short pause, and adds slow postural sway, so
no two repetitions are identical. Right-side actions are the mirror images of the left-side ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from midas_ros.mmfi.layout import ACTION_NAMES
from midas_ros.sim.body import NUM_PARAMS, PARAM_INDEX

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

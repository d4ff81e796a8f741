"""Simulated people: per-subject body dimensions, forward kinematics to the 17 joints, and a body mesh.

Joints follow Human3.6M order (midas_ros.skeleton). All positions are in the room frame (x forward from
the sensor rig, y left, z up), metres. The body's own frame has x = facing direction, y = left, z = up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from midas_ros.skeleton import NUM_JOINTS

# Pose parameters, one column each in a (frames, NUM_PARAMS) array. Angles in radians, offsets in metres.
# Arm and leg angles are defined per side so that a positive value means the same movement on either
# side (abduction = away from the body, hz = horizontal swing outwards, rot = upper-arm rotation that
# turns the forearm up when the arm is raised sideways); mirroring an action just swaps l_ and r_.
PARAM_NAMES: tuple[str, ...] = (
    "dx",  # pelvis offset forward in the body frame
    "dy",  # pelvis offset to the left in the body frame
    "jump",  # lift of the whole body above standing (jumps, rising on toes)
    "yaw",  # whole-body turn (left positive) on top of the heading
    "bend",  # trunk flexion forward
    "lat",  # trunk side bend to the left
    "twist",  # trunk rotation to the left
    "neck",  # head flexion forward
    "l_flex",
    "l_abd",
    "l_hz",
    "l_rot",
    "l_elb",
    "r_flex",
    "r_abd",
    "r_hz",
    "r_rot",
    "r_elb",
    "l_hflex",
    "l_habd",
    "l_knee",
    "r_hflex",
    "r_habd",
    "r_knee",
)
PARAM_INDEX: dict[str, int] = {name: i for i, name in enumerate(PARAM_NAMES)}
NUM_PARAMS = len(PARAM_NAMES)

# The range of each parameter (degrees; metres for dx, dy and jump): the joint limits of a healthy adult
# (shoulder elevation to vertical and a little beyond, elbow and knee hyperextension of a few degrees),
# wide enough for every action template (motions.ACTIONS) at its largest repetition. Generated motion is
# kept inside them (motions.sequence_motion).
PARAM_LIMITS: dict[str, tuple[float, float]] = {
    "dx": (-0.4, 0.4),
    "dy": (-0.45, 0.45),
    "jump": (0.0, 0.4),
    "yaw": (-45.0, 45.0),
    "bend": (-30.0, 95.0),
    "lat": (-45.0, 45.0),
    "twist": (-75.0, 75.0),
    "neck": (-45.0, 60.0),
    **{
        f"{side}_{name}": limits
        for side in "lr"
        for name, limits in (
            ("flex", (-60.0, 185.0)),
            ("abd", (-20.0, 185.0)),
            ("hz", (-45.0, 120.0)),
            ("rot", (-90.0, 120.0)),
            ("elb", (-10.0, 150.0)),
            ("hflex", (-30.0, 125.0)),
            ("habd", (-25.0, 65.0)),
            ("knee", (-8.0, 150.0)),
        )
    },
}
_LINEAR_PARAMS = ("dx", "dy", "jump")
# The same limits as arrays over PARAM_NAMES, in the units of a params array (radians, metres).
PARAM_LOWER = np.array(
    [PARAM_LIMITS[n][0] if n in _LINEAR_PARAMS else np.deg2rad(PARAM_LIMITS[n][0]) for n in PARAM_NAMES]
)
PARAM_UPPER = np.array(
    [PARAM_LIMITS[n][1] if n in _LINEAR_PARAMS else np.deg2rad(PARAM_LIMITS[n][1]) for n in PARAM_NAMES]
)
assert set(PARAM_LIMITS) == set(PARAM_NAMES)


@dataclass(frozen=True)
class Body:
    """One subject's dimensions in metres (segment lengths between joints, and surface radii)."""

    subject: int
    height: float
    ankle_height: float
    shank: float
    thigh: float
    hip_half_width: float
    spine: float  # pelvis -> spine joint
    thorax: float  # spine joint -> thorax (neck base)
    nose_up: float  # thorax -> neck/nose joint, upwards
    nose_forward: float
    head: float  # neck/nose -> head joint
    shoulder_half_width: float
    upper_arm: float
    forearm: float
    girth: float  # scales all radii (build)
    torso_depth: float  # half depth of the torso
    torso_width: float  # half width of the torso


def make_body(subject: int, seed: int = 0) -> Body:
    """Deterministic body of one subject: height and proportions drawn from (subject, seed).

    Ratios to height follow standard anthropometric tables (Drillis & Contini); each segment then gets
    its own +-4 % variation so subjects differ in proportions, not only in size.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, subject, 0xB0D1]))
    height = float(np.clip(rng.normal(1.70, 0.09), 1.50, 1.95))
    girth = float(np.clip(rng.normal(1.0, 0.12), 0.8, 1.35))

    def seg(ratio: float) -> float:
        return float(height * ratio * (1.0 + np.clip(rng.normal(0.0, 0.04), -0.1, 0.1)))

    return Body(
        subject=subject,
        height=height,
        ankle_height=seg(0.039),
        shank=seg(0.246),
        thigh=seg(0.245),
        hip_half_width=seg(0.055),
        spine=seg(0.12),
        thorax=seg(0.17),
        nose_up=seg(0.075),
        nose_forward=seg(0.045),
        head=seg(0.065),
        shoulder_half_width=seg(0.11),
        upper_arm=seg(0.186),
        forearm=seg(0.146),
        girth=girth,
        torso_depth=seg(0.062) * girth,
        torso_width=seg(0.09) * (0.5 + 0.5 * girth),
    )


# --- rotations, batched over frames -------------------------------------------------------------------


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """(F, 3, 3) right-handed rotations by angle (F,) about the x (0), y (1) or z (2) axis."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*np.shape(angle), 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def _apply(rot: np.ndarray, vec: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """Rotate a fixed vector (3,) or per-frame vectors (F, 3) by (F, 3, 3)."""
    vec = np.asarray(vec, dtype=np.float64)
    if vec.ndim == 1:
        return np.einsum("fij,j->fi", rot, vec)
    return np.einsum("fij,fj->fi", rot, vec)


def forward_kinematics(
    body: Body,
    params: np.ndarray,
    position: tuple[float, float] | np.ndarray,
    heading: float | np.ndarray,
) -> np.ndarray:
    """Joints (F, 17, 3) in the room frame from pose parameters (F, NUM_PARAMS).

    position: (x, y) of the pelvis on the floor plane in the room, fixed (2,) or per frame (F, 2);
    heading: facing direction (radians, 0 = +x, i.e. facing away from the rig), fixed or per frame (F,)
    (a walking, turning person: see motions.sequence_motion). The body is lowered or raised so that the
    lower ankle rests at ankle height (plus any "jump"), which keeps feet on the floor through squats and
    lunges.
    """
    p = {name: params[:, i] for name, i in PARAM_INDEX.items()}
    frames = params.shape[0]
    position = np.broadcast_to(np.asarray(position, dtype=np.float64), (frames, 2))
    heading = np.broadcast_to(np.asarray(heading, dtype=np.float64), (frames,))
    root = _rot(2, heading + p["yaw"])

    def trunk(frac: float) -> np.ndarray:
        # bend = +y rotation (tilts up forwards), lat left = -x rotation, twist left = +z rotation
        return root @ _rot(2, frac * p["twist"]) @ _rot(1, frac * p["bend"]) @ _rot(0, -frac * p["lat"])

    lower, upper = trunk(0.45), trunk(1.0)
    joints = np.zeros((frames, NUM_JOINTS, 3))
    pelvis = _apply(root, np.stack([p["dx"], p["dy"], np.zeros(frames)], axis=1))
    joints[:, 0] = pelvis
    joints[:, 7] = pelvis + _apply(lower, (0.0, 0.0, body.spine))
    joints[:, 8] = joints[:, 7] + _apply(upper, (0.0, 0.0, body.thorax))
    neck = upper @ _rot(1, p["neck"])
    joints[:, 9] = joints[:, 8] + _apply(neck, (body.nose_forward, 0.0, body.nose_up))
    joints[:, 10] = joints[:, 9] + _apply(neck, (-0.6 * body.nose_forward, 0.0, body.head))

    for side, (shoulder, elbow, wrist) in (("l", (11, 12, 13)), ("r", (14, 15, 16))):
        s = 1.0 if side == "l" else -1.0
        joints[:, shoulder] = joints[:, 8] + _apply(upper, (0.0, s * body.shoulder_half_width, -0.02))
        arm = (
            upper
            @ _rot(2, s * p[f"{side}_hz"])
            @ _rot(0, s * p[f"{side}_abd"])
            @ _rot(1, -p[f"{side}_flex"])
            @ _rot(2, s * p[f"{side}_rot"])
        )
        joints[:, elbow] = joints[:, shoulder] + _apply(arm, (0.0, 0.0, -body.upper_arm))
        fore = arm @ _rot(1, -p[f"{side}_elb"])
        joints[:, wrist] = joints[:, elbow] + _apply(fore, (0.0, 0.0, -body.forearm))

    for side, (hip, knee, ankle) in (("l", (4, 5, 6)), ("r", (1, 2, 3))):
        s = 1.0 if side == "l" else -1.0
        joints[:, hip] = pelvis + _apply(root, (0.0, s * body.hip_half_width, -0.01 * body.height))
        leg = root @ _rot(0, s * p[f"{side}_habd"]) @ _rot(1, -p[f"{side}_hflex"])
        joints[:, knee] = joints[:, hip] + _apply(leg, (0.0, 0.0, -body.thigh))
        shank = leg @ _rot(1, p[f"{side}_knee"])
        joints[:, ankle] = joints[:, knee] + _apply(shank, (0.0, 0.0, -body.shank))

    lowest = np.minimum(joints[:, 3, 2], joints[:, 6, 2])
    joints[:, :, 2] += (body.ankle_height - lowest + p["jump"])[:, None]
    joints[:, :, 0] += position[:, 0:1]
    joints[:, :, 1] += position[:, 1:2]
    return joints


# --- body surface: capsules with elliptic cross-sections around the skeleton -----------------------------

_AROUND = 12  # vertices around each capsule
_CAP_RINGS = 3  # rings per hemispherical cap
# The small shape-cue parts (body_segments' cues) need less: 8 around, 2 rings per cap.
_CUE_AROUND = 8
_CUE_CAP_RINGS = 2


def _capsule_template(around: int = _AROUND, cap_rings: int = _CAP_RINGS) -> tuple[np.ndarray, np.ndarray]:
    """Unit capsule as coefficients and triangles.

    A vertex of a capsule from a to b with cross-section radii (ra, rb) and cap radius rc is
    a + ra*c0*u + rb*c1*w + (|b-a|*c2 + rc*c3)*d, with (c0, c1, c2, c3) = coef[k] and d the axis.
    """
    phi = np.linspace(0.0, 2.0 * np.pi, around, endpoint=False)
    rings = []  # (scale of the circle, end 0/1, axial offset in cap radii)
    for k in range(cap_rings, 0, -1):  # bottom cap, from the pole towards the equator
        theta = 0.5 * np.pi * k / (cap_rings + 1)
        rings.append((np.cos(theta), 0.0, -np.sin(theta)))
    rings.append((1.0, 0.0, 0.0))
    rings.append((1.0, 1.0, 0.0))
    for k in range(1, cap_rings + 1):
        theta = 0.5 * np.pi * k / (cap_rings + 1)
        rings.append((np.cos(theta), 1.0, np.sin(theta)))
    coef = [(0.0, 0.0, 0.0, -1.0)]  # bottom pole
    for scale, end, axial in rings:
        for a in phi:
            coef.append((scale * np.cos(a), scale * np.sin(a), end, axial))
    coef.append((0.0, 0.0, 1.0, 1.0))  # top pole
    coef = np.array(coef)

    tris = []
    n_rings = len(rings)
    top = 1 + n_rings * around
    for i in range(around):
        j = (i + 1) % around
        tris.append((0, 1 + j, 1 + i))
        for r in range(n_rings - 1):
            a0, a1 = 1 + r * around + i, 1 + r * around + j
            b0, b1 = a0 + around, a1 + around
            tris.append((a0, a1, b1))
            tris.append((a0, b1, b0))
        last = 1 + (n_rings - 1) * around
        tris.append((last + i, last + j, top))
    return coef, np.array(tris, dtype=np.int64)


_CAPSULE_COEF, _CAPSULE_TRIS = _capsule_template()
_CUE_CAPSULE_COEF, _CUE_CAPSULE_TRIS = _capsule_template(_CUE_AROUND, _CUE_CAP_RINGS)


@dataclass(frozen=True)
class Segments:
    """Body parts as capsules, batched over frames: start/end (F, S, 3), radii (S,) and a forward hint."""

    start: np.ndarray
    end: np.ndarray
    radius_forward: np.ndarray  # cross-section half axis along the forward hint
    radius_side: np.ndarray
    forward: np.ndarray  # (F, S, 3) direction the first cross-section axis should follow
    # (S,) bool: the small parts that only shape the surface (face, nose, chest, shoulder blades,
    # buttocks, heels); a model of the body's bulk (e.g. WiFi scattering) may leave them out
    cue: np.ndarray | None = None


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def body_segments(joints: np.ndarray, body: Body, cues: bool = True) -> Segments:
    """The capsules of the body surface for joints (F, 17, 3) (or (17, 3)).

    cues: add the shapes that tell a depth camera or LiDAR which way the person faces (a real body's
    front and back differ): a face and nose in front of the head, the chest in front of an upper
    torso whose spine lies towards the back, shoulder blades, buttocks behind the hips, a lower back set
    forward of them (lordosis), and heels behind the ankles (the feet already point forward). False gives
    the older, nearly front-back symmetric body (for the heading probe, benchmarks/probe_heading.py).
    """
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim == 2:
        j = j[None]
    g = body.girth
    left = j[:, 4] - j[:, 1]
    left /= np.linalg.norm(left, axis=1, keepdims=True)
    fwd = np.cross(left, np.array([0.0, 0.0, 1.0]))
    fwd /= np.linalg.norm(fwd, axis=1, keepdims=True)

    hand_dir = {}
    for wrist, elbow in ((13, 12), (16, 15)):
        d = j[:, wrist] - j[:, elbow]
        hand_dir[wrist] = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    foot = {}
    for ankle, s in ((6, 1.0), (3, -1.0)):
        # feet point forward, slightly outwards; their tip rests near the floor
        out = fwd + 0.25 * s * left
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        foot[ankle] = out * 0.14 * body.height / 1.7 - np.array([0.0, 0.0, 0.04])

    mid_hip = 0.5 * (j[:, 1] + j[:, 4])
    mid_sh = 0.5 * (j[:, 11] + j[:, 14])
    head_base = j[:, 9] - 0.25 * (j[:, 10] - j[:, 9])
    td, tw = body.torso_depth, body.torso_width
    lower_start, lower_end = mid_hip - 0.02, 0.5 * (j[:, 7] + mid_hip)
    upper_start, upper_end = j[:, 7], mid_sh - 0.5 * (mid_sh - j[:, 8])
    lower_r, upper_r = td, td * 1.05
    if cues:
        # trunk frames from the joints (so they follow bend, side bend and twist)
        up_u = _unit(j[:, 8] - j[:, 7])
        left_u = _unit(j[:, 11] - j[:, 14])
        fwd_u = _unit(np.cross(left_u, up_u))
        up_l = _unit(j[:, 7] - j[:, 0])
        fwd_l = _unit(np.cross(left, up_l))
        # the spine lies at the back of the chest and at the front of the lower back's hollow
        # (and the lower trunk starts 2 cm below the hips, not 2 cm off along each room axis)
        lower_start = mid_hip - np.array([0.0, 0.0, 0.02]) + 0.05 * td * fwd_l
        lower_end = lower_end + 0.05 * td * fwd_l
        upper_start, upper_end = upper_start - 0.15 * td * fwd_u, upper_end - 0.15 * td * fwd_u
        lower_r, upper_r = td * 0.95, td * 0.95
    # (start, end, radius forward, radius side)
    parts = [
        (lower_start, lower_end, lower_r, tw * 0.95),
        (upper_start, upper_end, upper_r, tw),
        (j[:, 1], j[:, 4], 0.085 * g, 0.06 * g),
        (j[:, 11], j[:, 14], 0.05 * g, 0.05 * g),
        (j[:, 8], j[:, 9] - 0.3 * (j[:, 9] - j[:, 8]), 0.045 * g, 0.045 * g),
        (head_base, j[:, 10] - 0.02 * (j[:, 10] - j[:, 9]), 0.085, 0.075),
        (j[:, 11], j[:, 12], 0.045 * g, 0.045 * g),
        (j[:, 14], j[:, 15], 0.045 * g, 0.045 * g),
        (j[:, 12], j[:, 13], 0.036 * g, 0.036 * g),
        (j[:, 15], j[:, 16], 0.036 * g, 0.036 * g),
        (j[:, 13], j[:, 13] + 0.08 * hand_dir[13], 0.025, 0.04),
        (j[:, 16], j[:, 16] + 0.08 * hand_dir[16], 0.025, 0.04),
        (j[:, 4], j[:, 5], 0.07 * g, 0.07 * g),
        (j[:, 1], j[:, 2], 0.07 * g, 0.07 * g),
        (j[:, 5], j[:, 6], 0.05 * g, 0.05 * g),
        (j[:, 2], j[:, 3], 0.05 * g, 0.05 * g),
        (j[:, 6], j[:, 6] + foot[6], 0.04, 0.045),
        (j[:, 3], j[:, 3] + foot[3], 0.04, 0.045),
    ]
    hints = [fwd] * len(parts)
    if cues:
        hints[0], hints[1] = fwd_l, fwd_u
        extra, extra_hints = _cue_parts(j, body, fwd, left, fwd_u, left_u, foot)
        parts += extra
        hints += extra_hints
    start = np.stack([p[0] for p in parts], axis=1)
    end = np.stack([p[1] for p in parts], axis=1)
    forward = np.stack(hints, axis=1) if cues else np.broadcast_to(fwd[:, None, :], start.shape)
    n_cues = len(parts) - _NUM_BASE_PARTS
    assert n_cues in (0, len(CUE_PARTS))
    return Segments(
        start=start,
        end=end,
        radius_forward=np.array([p[2] for p in parts], dtype=np.float64),
        radius_side=np.array([p[3] for p in parts], dtype=np.float64),
        forward=forward,
        cue=np.array([False] * _NUM_BASE_PARTS + [True] * n_cues),
    )


_NUM_BASE_PARTS = 18
# The parts body_segments(..., cues=True) appends after the 18 base parts, in this order.
CUE_PARTS: tuple[str, ...] = (
    "face",
    "nose",
    "chest",
    "left_shoulder_blade",
    "right_shoulder_blade",
    "left_buttock",
    "right_buttock",
    "left_heel",
    "right_heel",
)


def _cue_parts(
    j: np.ndarray,
    body: Body,
    fwd: np.ndarray,
    left: np.ndarray,
    fwd_u: np.ndarray,
    left_u: np.ndarray,
    foot: dict[int, np.ndarray],
) -> tuple[list, list]:
    """The shape-cue capsules (see body_segments) and their forward hints."""
    g, td, tw = body.girth, body.torso_depth, body.torso_width
    scale = body.height / 1.7
    up = np.array([0.0, 0.0, 1.0])
    parts, hints = [], []

    # Head frame: the neck joint (9) to the head joint (10) is (-0.6 nose_forward, 0, head) in the head's
    # own axes (forward_kinematics), which gives the head's forward axis hf in the sagittal plane.
    w = j[:, 10] - j[:, 9]
    across = np.cross(left_u, w)
    hf = _unit(body.head * across - 0.6 * body.nose_forward * w)
    hu = _unit(np.cross(hf, left_u))
    nose = j[:, 9]
    # face: a flat-fronted volume from chin to brow, 1 cm proud of the round skull, and the nose
    parts.append((nose + 0.045 * hf - 0.05 * hu, nose + 0.04 * hf + 0.045 * hu, 0.05, 0.058))
    parts.append((nose + 0.07 * hf + 0.015 * hu, nose + 0.1 * hf - 0.015 * hu, 0.016, 0.018))
    hints += [hf, hu]  # the nose's first cross-section axis is vertical (its own axis points forward)

    # chest: a bar across the front of the upper torso at the height of the pectorals
    up_len = j[:, 8] - j[:, 7]
    chest = j[:, 7] + 0.7 * up_len + 0.4 * td * fwd_u
    half = 0.5 * tw * left_u
    parts.append((chest - half, chest + half, 0.6 * td, 0.09 * scale))
    hints.append(fwd_u)
    # shoulder blades: two flat plates proud of the upper back
    for s in (1.0, -1.0):
        side = s * 0.4 * tw * left_u - 0.85 * td * fwd_u
        parts.append((j[:, 7] + 0.5 * up_len + side, j[:, 7] + 0.85 * up_len + side, 0.3 * td, 0.05 * scale))
        hints.append(fwd_u)
    # buttocks: behind the hip joints, a little inwards; they go with the pelvis
    for hip, s in ((4, 1.0), (1, -1.0)):
        centre = j[:, hip] - s * 0.25 * body.hip_half_width * left - (0.45 * td + 0.03 * scale) * fwd
        parts.append((centre - 0.06 * scale * up, centre, 0.065 * g + 0.01, 0.065 * g))
        hints.append(fwd)
    # heels: behind and below the ankles, opposite the toes
    for ankle in (6, 3):
        back = -_unit(foot[ankle] * np.array([1.0, 1.0, 0.0]))
        a = j[:, ankle]
        parts.append((a - 0.025 * scale * up, a + 0.045 * scale * back - 0.03 * scale * up, 0.03, 0.035))
        hints.append(np.broadcast_to(up, back.shape))  # cross-section: height, then width
    return parts, hints


def body_mesh(joints: np.ndarray, body: Body, cues: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh of the body for one frame of joints (17, 3): (vertices (V, 3) float32, triangles
    (T, 3) uint32). cues: as body_segments."""
    seg = body_segments(joints, body, cues)
    start, end, hint = seg.start[0], seg.end[0], seg.forward[0]
    axis = end - start
    length = np.linalg.norm(axis, axis=1, keepdims=True)
    d = axis / np.maximum(length, 1e-9)
    u = hint - np.sum(hint * d, axis=1, keepdims=True) * d
    # a segment parallel to the hint (e.g. a forward-pointing limb) needs another perpendicular
    bad = np.linalg.norm(u, axis=1) < 1e-3
    u[bad] = np.cross(d[bad], np.array([0.0, 0.0, 1.0]))
    bad = np.linalg.norm(u, axis=1) < 1e-3
    u[bad] = np.cross(d[bad], np.array([0.0, 1.0, 0.0]))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = np.cross(d, u)
    cap_r = np.minimum(seg.radius_forward, seg.radius_side)
    cue = seg.cue if seg.cue is not None else np.zeros(len(cap_r), dtype=bool)
    verts, tris, offset = [], [], 0
    for parts, coef, template in (
        (~cue, _CAPSULE_COEF, _CAPSULE_TRIS),
        (cue, _CUE_CAPSULE_COEF, _CUE_CAPSULE_TRIS),
    ):
        if not parts.any():
            continue
        c = coef[None]
        v = (
            start[parts, None, :]
            + seg.radius_forward[parts, None, None] * c[..., 0:1] * u[parts, None, :]
            + seg.radius_side[parts, None, None] * c[..., 1:2] * w[parts, None, :]
            + (length[parts, None, :] * c[..., 2:3] + cap_r[parts, None, None] * c[..., 3:4])
            * d[parts, None, :]
        )
        n_seg, n_vert = v.shape[:2]
        verts.append(v.reshape(-1, 3))
        tris.append((template[None] + offset + (np.arange(n_seg) * n_vert)[:, None, None]).reshape(-1, 3))
        offset += n_seg * n_vert
    return np.concatenate(verts).astype(np.float32), np.concatenate(tris).astype(np.uint32)

"""WiFi CSI: a geometric multipath channel with the impairments of a commodity (Atheros) receiver.

Channel per packet, antenna and subcarrier: H = sum over paths of g * exp(-j 2 pi f tau), with
- the line-of-sight path,
- first-order reflections off floor, ceiling and walls (image sources) and static furniture/clutter
  scatterers (bistatic radar equation): the room's own paths, fixed per room (`room_channel`),
- one scatterer per body part (capsule) whose radar cross-section follows its size.
Every room path, the line of sight included, is attenuated by knife-edge diffraction where body parts
block it, so the body is seen twice: by its weak reflections, and by the shadow it casts on the paths
through the space it stands in (several dB on the line of sight when the torso crosses it).
The receiver then adds its RF front end's response (fixed per device), thermal noise, automatic gain
control per packet and chain, a random phase per packet, a timing offset (linear phase over subcarriers)
and 10-bit quantisation. Pose information in the result is small by construction of the physics.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np

from midas_ros.sim.body import Body, Segments, body_segments
from midas_ros.sim.room import Room
from midas_ros.sim.sensors import (
    CSI_CENTER_HZ,
    CSI_SUBCARRIER_SPACING_HZ,
    CSI_WAVELENGTH_M,
    SPEED_OF_LIGHT,
    WIFI_RX_POSITIONS,
    WIFI_TX_POSITION,
)

# HT40 subcarriers reported by Atheros CSI tools: -58..-2 and 2..58 (114 in all).
CSI_SUBCARRIER_INDICES: np.ndarray = np.concatenate([np.arange(-58, -1), np.arange(2, 59)])
CSI_PACKETS_PER_FRAME = 10
_FREQS = CSI_CENTER_HZ + CSI_SUBCARRIER_INDICES * CSI_SUBCARRIER_SPACING_HZ
_TARGET_AMPLITUDE = 40.0  # AGC set point in the receiver's integer CSI units (10-bit I/Q)
_TX = np.asarray(WIFI_TX_POSITION, dtype=np.float64)
_RX = np.asarray(WIFI_RX_POSITIONS, dtype=np.float64)
# Clutter keeps out of the space where people stand and move (the sensing area in front of the rig).
_CLEAR_X = (1.4, 4.9)
_CLEAR_Y = (-1.6, 1.6)
# A path farther than this from every body part is not diffracted by it: ITU-R P.526's knife-edge loss
# vanishes for v < -0.78, i.e. a clearance of 0.55 first-Fresnel-zone radii, and that radius is below
# 0.5 m for any path in these rooms.
_FRESNEL_MARGIN_M = 0.3


def _front_end_response() -> np.ndarray:
    """(antennas, subcarriers) amplitude response of the receiver's RF chains: band-edge roll-off of the
    channel filter and a small ripple of its own per chain. A property of the device (the same receiver
    records every room and sequence), so drawn once from a fixed stream."""
    rng = np.random.default_rng(np.random.SeedSequence([0xF0E4D, len(WIFI_RX_POSITIONS)]))
    n_ant = len(WIFI_RX_POSITIONS)
    k_norm = CSI_SUBCARRIER_INDICES / 58.0
    ripple = 1 + 0.05 * np.sin(
        2 * np.pi * (k_norm[None, :] * rng.uniform(1, 3, (n_ant, 1)) + rng.random((n_ant, 1)))
    )
    return (1 - 0.35 * k_norm**8)[None, :] * ripple


_FRONT_END = _front_end_response()


def _paths_response(gain: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """Each path's gain * exp(-j 2 pi f tau): gain and delay (..., P) -> (..., P, subcarriers)."""
    return gain.astype(np.complex128)[..., None] * np.exp((-2j * np.pi) * delay[..., None] * _FREQS)


def _bistatic(points: np.ndarray, rcs: np.ndarray, rx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gains and delays of point scatterers (..., P, 3) with radar cross-sections (P,) to antennas rx
    (A, 3): returns (..., A, P) each. Amplitude lambda sqrt(rcs) / ((4 pi)^1.5 d1 d2), sign flip."""
    d1 = np.linalg.norm(points - _TX, axis=-1)[..., None, :]
    d2 = np.linalg.norm(points[..., None, :, :] - rx[:, None, :], axis=-1)
    gain = -CSI_WAVELENGTH_M * np.sqrt(rcs) / ((4 * np.pi) ** 1.5 * d1 * d2)
    return gain, (d1 + d2) / SPEED_OF_LIGHT


@dataclass(frozen=True)
class RoomChannel:
    """The room's propagation paths from the transmitter to each receive antenna, path 0 the line of
    sight. Each path is two straight legs, transmitter -> turning point (reflection point or scatterer;
    the midpoint for the line of sight) -> antenna, which is all a body part needs to shadow it."""

    response: np.ndarray  # (A, P, K) complex, each path's unobstructed contribution per subcarrier
    turn: np.ndarray  # (A, P, 3) turning point
    length: np.ndarray  # (A, P) total path length, m

    @property
    def empty(self) -> np.ndarray:
        """(A, K) channel of the empty room."""
        return self.response.sum(axis=1)


def _room_rng(room: Room) -> np.random.Generator:
    """The room's own random stream: its clutter and reflection phases depend on the room alone."""
    return np.random.default_rng(np.random.SeedSequence([zlib.crc32(room.name.encode()), 0x57A71C]))


@functools.lru_cache(maxsize=16)
def room_channel(room: Room) -> RoomChannel:
    """The fixed paths of a room: walls, floor, ceiling, furniture and clutter do not move between
    recordings, so they are drawn from the room's own stream, the same in every recording made there."""
    rng = _room_rng(room)
    n_ant = _RX.shape[0]
    (x0, x1), (y0, y1), h = room.x_range, room.y_range, room.height
    gains, delays, turns = [], [], []

    los = np.linalg.norm(_RX - _TX, axis=1)
    gains.append(CSI_WAVELENGTH_M / (4 * np.pi * los))
    delays.append(los / SPEED_OF_LIGHT)
    turns.append(0.5 * (_TX + _RX))

    # First-order specular reflections: image of the transmitter in each plane; the path turns where the
    # line from the image to the antenna meets the plane.
    for axis, plane, coef in (
        (2, 0.0, room.reflectivity[0]),
        (2, h, room.reflectivity[1]),
        (0, x0, room.reflectivity[2]),
        (0, x1, room.reflectivity[3]),
        (1, y0, room.reflectivity[4]),
        (1, y1, room.reflectivity[5]),
    ):
        image = _TX.copy()
        image[axis] = 2 * plane - _TX[axis]
        dist = np.linalg.norm(_RX - image, axis=1)
        gains.append(-coef * CSI_WAVELENGTH_M / (4 * np.pi * dist))
        delays.append(dist / SPEED_OF_LIGHT)
        turns.append(image + ((plane - image[axis]) / (_RX[:, axis] - image[axis]))[:, None] * (_RX - image))

    # Furniture (strong, e.g. metal cabinets) and diffuse clutter (small objects, wall texture), outside
    # the space where people stand.
    centres = [0.5 * (np.array(lo) + np.array(hi)) for lo, hi in room.furniture]
    rcs = [rng.uniform(0.3, 2.0) for _ in room.furniture]
    clutter: list[np.ndarray] = []
    while len(clutter) < 24:
        p = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(0.0, h)])
        if not (_CLEAR_X[0] < p[0] < _CLEAR_X[1] and _CLEAR_Y[0] < p[1] < _CLEAR_Y[1]):
            clutter.append(p)
    points = np.concatenate([np.array(centres).reshape(-1, 3), np.array(clutter)])
    rcs = np.concatenate([rcs, rng.uniform(0.01, 0.2, len(clutter))])
    gain, delay = _bistatic(points, rcs, _RX)  # (A, P)
    # A reflection phase of its own per scatterer (material, shape).
    gains += list((gain * np.exp(1j * rng.uniform(0, 2 * np.pi, rcs.size))).T)
    delays += list(delay.T)
    turns += [np.broadcast_to(p, (n_ant, 3)) for p in points]

    gain = np.stack(gains, axis=1)  # (A, P)
    delay = np.stack(delays, axis=1)
    channel = RoomChannel(
        response=_paths_response(gain, delay),
        turn=np.stack(turns, axis=1).astype(np.float64),
        length=delay * SPEED_OF_LIGHT,
    )
    for array in (channel.response, channel.turn, channel.length):
        array.flags.writeable = False
    return channel


def static_channel(room: Room) -> np.ndarray:
    """(antennas, subcarriers) complex channel of the empty room without the line of sight: a property
    of the room alone, the same in every recording made there."""
    return room_channel(room).response[:, 1:].sum(axis=1)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot products over the last axis, broadcast."""
    return np.einsum("...i,...i->...", a, b)


def _segment_distance(p0: np.ndarray, p1: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Closest points between segments p0 -> p1 (M, 3) and capsule axes a -> b (..., S, 3).

    Returns s (..., M, S), the fraction along p0 -> p1, and the connector from the axis to the first
    segment (..., M, S, 3) (Ericson, Real-Time Collision Detection, 5.1.9).
    """
    d1 = (p1 - p0)[:, None, :]  # (M, 1, 3)
    d2 = (b - a)[..., None, :, :]  # (..., 1, S, 3)
    r = p0[:, None, :] - a[..., None, :, :]  # (..., M, S, 3)
    aa = _dot(d1, d1)
    ee = _dot(d2, d2)
    f = _dot(d2, r)
    c = _dot(d1, r)
    bb = _dot(d1, d2)
    denom = aa * ee - bb**2
    safe_e = np.maximum(ee, 1e-12)
    s = np.where(denom > 1e-9 * aa * safe_e, np.clip((bb * f - c * ee) / np.maximum(denom, 1e-30), 0, 1), 0.0)
    t = (bb * s + f) / safe_e
    s = np.where(t < 0, np.clip(-c / aa, 0, 1), np.where(t > 1, np.clip((bb - c) / aa, 0, 1), s))
    t = np.clip(t, 0, 1)
    connector = (p0[:, None, :] + s[..., None] * d1) - (a[..., None, :, :] + t[..., None] * d2)
    return s, connector


def _diffraction_v(seg: Segments, p0, p1, before, total) -> np.ndarray:
    """Fresnel-Kirchhoff parameter v (..., M) of the most obstructing body part for path legs p0 -> p1
    (M, 3), each starting `before` metres into a path `total` metres long.

    A part's edge is its capsule surface: the clearance is the distance from the leg to the capsule's
    axis less the capsule's extent in that direction (its elliptical cross-section), negative when the
    part covers the path; the wave then diffracts round the nearer side of the part.
    """
    s, connector = _segment_distance(p0, p1, seg.start, seg.end)
    dist = np.sqrt(_dot(connector, connector))  # (..., M, S)
    leg = p1 - p0
    leg_len = np.linalg.norm(leg, axis=-1)  # (M,)
    u = seg.end - seg.start
    u = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-9)  # (..., S, 3)
    fwd = seg.forward - _dot(seg.forward, u)[..., None] * u
    fwd = fwd / np.maximum(np.linalg.norm(fwd, axis=-1, keepdims=True), 1e-9)
    side = np.cross(u, fwd)
    # Direction of the nearest edge: along the connector or, for a path through the axis, sideways,
    # perpendicular to both the path and the part's axis.
    sideways = np.cross((leg / leg_len[:, None])[:, None, :], u[..., None, :, :])
    sideways = sideways / np.maximum(np.linalg.norm(sideways, axis=-1, keepdims=True), 1e-9)
    m = np.where((dist > 1e-6)[..., None], connector / np.maximum(dist, 1e-12)[..., None], sideways)
    rf, rs = seg.radius_forward, seg.radius_side
    extent = np.sqrt(
        (rf * _dot(m, fwd[..., None, :, :])) ** 2
        + (rs * _dot(m, side[..., None, :, :])) ** 2
        + (np.minimum(rf, rs) * _dot(m, u[..., None, :, :])) ** 2
    )
    d_a = np.maximum(before[:, None] + s * leg_len[:, None], 1e-3)
    d_b = np.maximum(total[:, None] - d_a, 1e-3)
    v = (extent - dist) * np.sqrt(2.0 / CSI_WAVELENGTH_M * (d_a + d_b) / (d_a * d_b))
    return np.max(v, axis=-1)


def _knife_edge_loss(v: np.ndarray) -> np.ndarray:
    """Amplitude factor of a path with Fresnel-Kirchhoff parameter v (ITU-R P.526 approximation), so a
    torso across the line of sight shadows it by about 10-13 dB, an arm by a few dB, a part beside the
    first Fresnel zone (about 0.26 m in radius half-way along the line of sight) by nothing."""
    loss_db = np.where(v > -0.78, 6.9 + 20 * np.log10(np.sqrt((v - 0.1) ** 2 + 1) + v - 0.1), 0.0)
    return 10 ** (-np.clip(loss_db, 0.0, 20.0) / 20)


def _bulk_segments(joints: np.ndarray, body: Body) -> Segments:
    """The body's capsules without the small shape cues (face, chest, heels...), which add nothing to
    scattering or shadowing at a 5.8 cm wavelength."""
    seg = body_segments(joints, body)
    forward = np.broadcast_to(seg.forward, seg.start.shape)
    if getattr(seg, "cue", None) is None:
        return Segments(seg.start, seg.end, seg.radius_forward, seg.radius_side, forward)
    keep = ~np.asarray(seg.cue)
    return Segments(
        seg.start[:, keep],
        seg.end[:, keep],
        seg.radius_forward[keep],
        seg.radius_side[keep],
        forward[:, keep],
    )


def _point_segment_distance(point: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Distance (M,) from a point (3,) to segments p0 -> p1 (M, 3)."""
    d = p1 - p0
    t = np.clip(np.sum((point - p0) * d, axis=-1) / np.maximum(np.sum(d * d, axis=-1), 1e-12), 0, 1)
    return np.linalg.norm(p0 + t[:, None] * d - point, axis=-1)


def room_paths_through_body(
    channel: RoomChannel, seg: Segments, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Which room paths the body shadows, and their amplitude factors per packet.

    Returns (near (P,) bool, loss (T, A, near.sum())); the paths left out keep their full amplitude
    throughout. Packets go in chunks; a leg farther than a Fresnel margin from the chunk's bounding
    sphere of the body is not looked at.
    """
    n_ant, n_paths = channel.length.shape
    tx = np.broadcast_to(_TX, (n_ant, n_paths, 3))
    rx = np.broadcast_to(_RX[:, None, :], (n_ant, n_paths, 3))
    first = np.linalg.norm(channel.turn - tx, axis=-1)
    p0 = np.stack([tx, channel.turn], axis=2).reshape(-1, 3)  # legs (A, P, 2) flattened
    p1 = np.stack([channel.turn, rx], axis=2).reshape(-1, 3)
    before = np.stack([np.zeros_like(first), first], axis=2).reshape(-1)
    total = np.repeat(channel.length.reshape(-1), 2)
    n_packets = seg.start.shape[0]
    v = np.full((n_packets, p0.shape[0]), -10.0)  # far from every part: no loss
    margin = np.max(seg.radius_side) + _FRESNEL_MARGIN_M
    for i in range(0, n_packets, chunk):
        part = Segments(
            seg.start[i : i + chunk],
            seg.end[i : i + chunk],
            seg.radius_forward,
            seg.radius_side,
            seg.forward[i : i + chunk],
        )
        points = np.concatenate([part.start.reshape(-1, 3), part.end.reshape(-1, 3)])
        centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
        radius = np.linalg.norm(points - centre, axis=1).max() + margin
        legs = np.nonzero(_point_segment_distance(centre, p0, p1) < radius)[0]
        if legs.size:
            v[i : i + chunk, legs] = _diffraction_v(part, p0[legs], p1[legs], before[legs], total[legs])
    # A path is as obstructed as its most obstructed leg.
    loss = _knife_edge_loss(v.reshape(n_packets, n_ant, n_paths, 2).max(axis=-1))
    near = (loss < 1.0).any(axis=(0, 1))
    return near, loss[..., near]


def simulate_csi(
    joints: np.ndarray, body: Body, room: Room, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """CSI amplitude and phase, each (frames, 3, 114, 10), for joints (frames, 17, 3) at 10 Hz.

    Packets arrive at jittered times spread over each frame's 100 ms; the body between frames is
    linearly interpolated. rng draws only what belongs to the recording (packet timing, noise, gain and
    phase offsets of the receiver); the room's paths are the room's own.
    """
    frames = joints.shape[0]
    n_ant = _RX.shape[0]
    n_pkt = CSI_PACKETS_PER_FRAME
    channel = room_channel(room)

    # Packet times in frame units, centred on each frame.
    offsets = (np.arange(n_pkt) + 0.5) / n_pkt - 0.5 + rng.uniform(-0.03, 0.03, (frames, n_pkt))
    when = np.clip(np.arange(frames)[:, None] + offsets, 0, frames - 1).reshape(-1)
    lo = np.floor(when).astype(int)
    hi = np.minimum(lo + 1, frames - 1)
    frac = (when - lo)[:, None, None]
    body_at = (1 - frac) * joints[lo] + frac * joints[hi]  # (T, 17, 3)
    seg = _bulk_segments(body_at, body)

    # The room's paths, the line of sight among them, each shadowed by the body where it crosses it.
    near, loss = room_paths_through_body(channel, seg)
    h = channel.response[:, ~near].sum(axis=1)[None] + np.einsum(
        "tap,apk->tak", loss, channel.response[:, near]
    )  # (T, A, K)

    # The body's own reflections. In chunks of packets: (T, A, S, K) would take hundreds of MB at once.
    centre = 0.5 * (seg.start + seg.end)  # (T, S, 3)
    length = np.linalg.norm(seg.end - seg.start, axis=-1)
    width = 2 * seg.radius_side
    rcs = (width * (length + width)).mean(axis=0)  # projected area, m^2 (about 0.6 m^2 in all)
    gain, delay = _bistatic(centre, rcs, _RX)  # (T, A, S)
    chunk = 128
    for i in range(0, gain.shape[0], chunk):
        h[i : i + chunk] += _paths_response(gain[i : i + chunk], delay[i : i + chunk]).sum(axis=-2)

    # Receiver chain. RF front end: the device's own band-edge roll-off and ripple per chain.
    h = h * _FRONT_END[None]
    # Thermal noise at the antenna, per sequence SNR.
    snr_db = rng.uniform(18.0, 28.0)
    power = np.mean(np.abs(h) ** 2)
    sigma = np.sqrt(power / 10 ** (snr_db / 10) / 2)
    h = h + sigma * (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape))
    # AGC per packet and chain: normalise the received power, with the gain settling error of a real AGC.
    # One gain for all subcarriers of a packet, so the channel's shape over frequency (how strong the
    # line of sight is next to the multipath) survives it.
    rms = np.sqrt(np.mean(np.abs(h) ** 2, axis=-1, keepdims=True))
    agc_db = rng.normal(0.0, 1.0, rms.shape)
    h = h * (_TARGET_AMPLITUDE / rms) * 10 ** (agc_db / 20)
    # Phase offsets: a fixed one per receive chain (PLL, locked anew each recording), a random one per
    # packet (carrier frequency offset, common to all chains) and a linear slope from the
    # packet-detection timing offset.
    chain_phase = rng.uniform(0, 2 * np.pi, n_ant)[None, :, None]
    packet_phase = rng.uniform(0, 2 * np.pi, (h.shape[0], 1, 1))
    timing = (rng.uniform(50e-9, 150e-9) + rng.normal(0.0, 20e-9, (h.shape[0], 1, 1))) * np.ones(
        (1, n_ant, 1)
    )
    slope = -2 * np.pi * CSI_SUBCARRIER_SPACING_HZ * CSI_SUBCARRIER_INDICES[None, None, :] * timing
    h = h * np.exp(1j * (chain_phase + packet_phase + slope))
    # 10-bit I/Q of the CSI report.
    h = np.clip(np.round(h.real), -512, 511) + 1j * np.clip(np.round(h.imag), -512, 511)

    h = h.reshape(frames, n_pkt, n_ant, -1).transpose(0, 2, 3, 1)  # (F, A, K, P)
    amplitude = np.abs(h)
    phase = np.angle(h)
    # A rare corrupted report: the logging tool writes Inf for an all-zero CSI entry (as in MM-Fi).
    bad = rng.random(frames) < 0.003
    for f in np.nonzero(bad)[0]:
        amplitude[f, rng.integers(n_ant), rng.integers(amplitude.shape[2]), rng.integers(n_pkt)] = np.inf
    return amplitude, phase

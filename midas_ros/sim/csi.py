"""WiFi CSI: a geometric multipath channel with the impairments of a commodity (Atheros) receiver.

Channel per packet, antenna and subcarrier: H = sum over paths of g * exp(-j 2 pi f tau), with
- the line-of-sight path (attenuated by knife-edge diffraction when body parts block it),
- first-order reflections off floor, ceiling and walls (image sources) and static furniture/clutter
  scatterers (bistatic radar equation),
- one scatterer per body part (capsule) whose radar cross-section follows its size.
The body is a weak term next to the static paths, and the receiver then adds a random phase per packet,
a timing offset (linear phase over subcarriers), automatic gain control, thermal noise and 10-bit
quantisation. Pose information in the result is therefore small by construction of the physics.
"""

from __future__ import annotations

import numpy as np

from midas_ros.sim.body import Body, body_segments
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


def _paths_response(gain: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """sum over the last axis of gain * exp(-j 2 pi f tau) -> (..., subcarriers)."""
    phase = (-2j * np.pi) * delay[..., None, :] * _FREQS[:, None]
    return np.einsum("...kp,...p->...k", np.exp(phase), gain.astype(np.complex128))


def _bistatic(points: np.ndarray, rcs: np.ndarray, rx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gains and delays of point scatterers (..., P, 3) with radar cross-sections (P,) to antennas rx
    (A, 3): returns (..., A, P) each. Amplitude lambda sqrt(rcs) / ((4 pi)^1.5 d1 d2), sign flip."""
    tx = np.asarray(WIFI_TX_POSITION)
    d1 = np.linalg.norm(points - tx, axis=-1)[..., None, :]
    d2 = np.linalg.norm(points[..., None, :, :] - rx[:, None, :], axis=-1)
    gain = -CSI_WAVELENGTH_M * np.sqrt(rcs) / ((4 * np.pi) ** 1.5 * d1 * d2)
    return gain, (d1 + d2) / SPEED_OF_LIGHT


def static_channel(room: Room, rng: np.random.Generator) -> np.ndarray:
    """(antennas, subcarriers) complex channel of the empty room without the line of sight."""
    tx = np.asarray(WIFI_TX_POSITION)
    rx = np.asarray(WIFI_RX_POSITIONS)
    (x0, x1), (y0, y1), h = room.x_range, room.y_range, room.height
    images = []  # (mirrored transmitter, reflection coefficient)
    for axis, plane, coef in (
        (2, 0.0, room.reflectivity[0]),
        (2, h, room.reflectivity[1]),
        (0, x0, room.reflectivity[2]),
        (0, x1, room.reflectivity[3]),
        (1, y0, room.reflectivity[4]),
        (1, y1, room.reflectivity[5]),
    ):
        image = tx.copy()
        image[axis] = 2 * plane - tx[axis]
        images.append((image, coef))
    src = np.array([i for i, _ in images])
    dist = np.linalg.norm(src[None, :, :] - rx[:, None, :], axis=-1)  # (A, 6)
    gain = -np.array([c for _, c in images])[None, :] * CSI_WAVELENGTH_M / (4 * np.pi * dist)
    response = _paths_response(gain, dist / SPEED_OF_LIGHT)

    # Furniture (strong, e.g. metal cabinets) and diffuse clutter (small objects, wall texture).
    centres = [0.5 * (np.array(lo) + np.array(hi)) for lo, hi in room.furniture]
    rcs = [rng.uniform(0.3, 2.0) for _ in room.furniture]
    n_clutter = 24
    clutter = np.column_stack(
        [rng.uniform(x0, x1, n_clutter), rng.uniform(y0, y1, n_clutter), rng.uniform(0.0, h, n_clutter)]
    )
    points = np.concatenate([np.array(centres).reshape(-1, 3), clutter])
    rcs = np.concatenate([rcs, rng.uniform(0.01, 0.2, n_clutter)])
    gain, delay = _bistatic(points, rcs, rx)
    # A reflection phase of its own per scatterer (material, shape).
    gain = gain * np.exp(1j * rng.uniform(0, 2 * np.pi, rcs.size))
    return response + _paths_response(gain, delay)


def _knife_edge_loss(segments_start, segments_end, radius, rx: np.ndarray) -> np.ndarray:
    """Amplitude factor (..., A) of the line of sight past the body, by the knife-edge approximation
    (ITU-R P.526) on the most obstructing body part."""
    tx = np.asarray(WIFI_TX_POSITION)
    centre = 0.5 * (segments_start + segments_end)  # (..., S, 3)
    los = rx - tx  # (A, 3)
    length = np.linalg.norm(los, axis=-1)
    direction = los / length[:, None]
    rel = centre[..., None, :, :] - tx  # (..., 1, S, 3)
    along = np.einsum("...asd,ad->...as", rel, direction)
    t = np.clip(along, 1e-3, length[:, None] - 1e-3)
    closest = tx + t[..., None] * direction[:, None, :]
    clearance = np.linalg.norm(rel + tx - closest, axis=-1) - radius  # (..., A, S)
    d1, d2 = t, length[:, None] - t
    v = -clearance * np.sqrt(2.0 / CSI_WAVELENGTH_M * (d1 + d2) / (d1 * d2))
    v = np.max(v, axis=-1)
    loss_db = np.where(v > -0.78, 6.9 + 20 * np.log10(np.sqrt((v - 0.1) ** 2 + 1) + v - 0.1), 0.0)
    return 10 ** (-np.clip(loss_db, 0.0, 20.0) / 20)


def simulate_csi(
    joints: np.ndarray, body: Body, room: Room, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """CSI amplitude and phase, each (frames, 3, 114, 10), for joints (frames, 17, 3) at 10 Hz.

    Packets arrive at jittered times spread over each frame's 100 ms; the body between frames is
    linearly interpolated.
    """
    frames = joints.shape[0]
    rx = np.asarray(WIFI_RX_POSITIONS)
    n_ant = rx.shape[0]
    n_pkt = CSI_PACKETS_PER_FRAME
    h_static = static_channel(room, rng)

    # Packet times in frame units, centred on each frame.
    offsets = (np.arange(n_pkt) + 0.5) / n_pkt - 0.5 + rng.uniform(-0.03, 0.03, (frames, n_pkt))
    when = np.clip(np.arange(frames)[:, None] + offsets, 0, frames - 1).reshape(-1)
    lo = np.floor(when).astype(int)
    hi = np.minimum(lo + 1, frames - 1)
    frac = (when - lo)[:, None, None]
    body_at = (1 - frac) * joints[lo] + frac * joints[hi]  # (T, 17, 3)

    seg = body_segments(body_at, body)
    centre = 0.5 * (seg.start + seg.end)  # (T, S, 3)
    length = np.linalg.norm(seg.end - seg.start, axis=-1)
    width = 2 * seg.radius_side
    rcs = (width * (length + width)).mean(axis=0)  # projected area, m^2 (about 0.6 m^2 in all)
    gain, delay = _bistatic(centre, rcs, rx)  # (T, A, S)
    # In chunks of packets: the (T, A, K, S) phase array would take hundreds of MB at once.
    chunk = 256
    h_body = np.concatenate(
        [_paths_response(gain[i : i + chunk], delay[i : i + chunk]) for i in range(0, gain.shape[0], chunk)]
    )  # (T, A, K)

    los_dist = np.linalg.norm(rx - np.asarray(WIFI_TX_POSITION), axis=1)
    shadow = _knife_edge_loss(seg.start, seg.end, seg.radius_side, rx)  # (T, A)
    h_los = _paths_response(
        (CSI_WAVELENGTH_M / (4 * np.pi * los_dist))[None, :, None] * shadow[..., None],
        np.broadcast_to((los_dist / SPEED_OF_LIGHT)[None, :, None], (when.size, n_ant, 1)),
    )
    h = h_los + h_static[None] + h_body  # (T, A, K)

    # Receiver chain. RF front end: fixed per-antenna band-edge roll-off and ripple.
    k_norm = CSI_SUBCARRIER_INDICES / 58.0
    ripple = 1 + 0.05 * np.sin(
        2 * np.pi * (k_norm[None, :] * rng.uniform(1, 3, (n_ant, 1)) + rng.random((n_ant, 1)))
    )
    h = h * ((1 - 0.35 * k_norm**8)[None, :] * ripple)[None]
    # Thermal noise at the antenna, per sequence SNR.
    snr_db = rng.uniform(18.0, 28.0)
    power = np.mean(np.abs(h) ** 2)
    sigma = np.sqrt(power / 10 ** (snr_db / 10) / 2)
    h = h + sigma * (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape))
    # AGC per packet and chain: normalise the received power, with the gain settling error of a real AGC.
    rms = np.sqrt(np.mean(np.abs(h) ** 2, axis=-1, keepdims=True))
    agc_db = rng.normal(0.0, 1.0, rms.shape)
    h = h * (_TARGET_AMPLITUDE / rms) * 10 ** (agc_db / 20)
    # Phase offsets: a fixed one per receive chain (PLL), a random one per packet (carrier frequency
    # offset, common to all chains) and a linear slope from the packet-detection timing offset.
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

"""The simulated world as real ROS drivers deliver it, at real size (numpy arrays, no ROS types).

`simulate_sequence` gives MM-Fi-like training data (person-cropped LiDAR clouds, one depth camera of the
rig pool). A deployed rig sees much more: an Ouster publishes the whole 360 deg organised scan (walls, floor,
ceiling, furniture and the person; (0, 0, 0) where a beam got no return), a RealSense D435 publishes
848 x 480 depth with its invalid band on the left edge. `DriverSimulator` renders the same people,
motions and rooms as `simulate_sequence` (same subject/action/seed -> same joints) that way, for the
adapters' tests and benchmarks:

    sim = DriverSimulator(subject=40, action=12, num_frames=10)
    scan = sim.ouster_scan(0)            # (64, 1024, 3) float32, LiDAR frame, (0, 0, 0) = no return
    depth = sim.depth_frame(0)           # (480, 848) uint16 mm, 0 = invalid (16UC1)
    depth_m = sim.depth_frame_m(0)       # the same frame as float32 metres, NaN = invalid (32FC1)
    cloud = sim.velodyne_cloud(0)        # (N, 3) float32, VLP-16-like, no-returns left out
    cloud = sim.livox_cloud(0)           # (N, 3) float32, Livox-like rosette, NaN rows = no return
    joints = sim.joints                  # (F, 17, 3) base frame; sim.joints_in("lidar") etc.

The sensors sit at the poses of a rig (`rig=`, default midas_ros.rig.MMFI_RIG), with the drivers' own
models (a D435 at 848 x 480, an OS1-64, ...) instead of the rig's.

Each (sensor, frame) has its own random stream, so frames can be rendered in any order and twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from midas_ros.mmfi import layout
from midas_ros.rig import MMFI_RIG, CameraIntrinsics, Pose, Rig
from midas_ros.sim.body import body_mesh
from midas_ros.sim.depth import DEPTH_BASELINE_M, DEPTH_MIN_M, DepthRenderer, add_depth_noise
from midas_ros.sim.generate import sequence_setup
from midas_ros.sim.lidar import LIDAR_DROPOUT, LIDAR_RANGE_STD_M
from midas_ros.sim.raycast import cast
from midas_ros.sim.rigs import CAMERA_MODELS
from midas_ros.sim.room import room_mesh, room_of
from midas_ros.sim.sensors import FRAME_RATE_HZ

# Salts of the per-(sensor, frame) random streams.
_SALT = {"ouster": 0x05, "velodyne": 0x16, "livox": 0x11, "depth": 0xD4}


@dataclass(frozen=True)
class SpinningLidar:
    """A spinning multi-beam LiDAR: `rings` beams evenly spread over the vertical FOV, `columns` firings
    a turn.

    Organised layout as ouster-ros publishes it (destaggered): ring 0 is the top beam; column 0 looks
    backwards (-x) and the azimuth decreases with the column (the sensor spins clockwise seen from
    above), so column `columns // 2` looks along +x.
    """

    rings: int = 64
    columns: int = 1024
    vertical_fov_deg: float = 45.0
    range_std_m: float = LIDAR_RANGE_STD_M
    dropout: float = LIDAR_DROPOUT  # returns lost at random (dark clothing, low incidence)
    min_range_m: float = 0.3  # blind zone near the window
    max_range_m: float = 120.0
    mixed_pixel_prob: float = 0.15  # chance that a beam straddling a > 0.3 m range edge reports in between

    def __post_init__(self) -> None:
        if self.rings < 2 or self.columns < 2:
            raise ValueError(f"need at least 2 rings and 2 columns, got {self.rings} x {self.columns}")


OS1_32 = SpinningLidar(rings=32)
OS1_64 = SpinningLidar()
OS1_128 = SpinningLidar(rings=128, columns=2048)
# VLP-16: 16 beams over +-15 deg, 0.2 deg steps at 10 Hz (1800 firings a turn, ~29k points), +-3 cm.
VLP_16 = SpinningLidar(rings=16, columns=1800, vertical_fov_deg=30.0, range_std_m=0.02, min_range_m=0.5)


@dataclass(frozen=True)
class LivoxLidar:
    """A Livox-like non-repetitive rosette scanner (Mid-40 / Avia style) looking along +x.

    Two counter-rotating prisms trace a rosette over a circular FOV; the pattern never repeats, so each
    frame samples other directions. No-return rows are NaN.
    """

    points_per_frame: int = 20_000
    fov_deg: float = 70.4
    range_std_m: float = 0.02
    dropout: float = 0.02
    min_range_m: float = 1.0  # Livox Mid-40's blind zone
    max_range_m: float = 90.0


LIVOX_MID40 = LivoxLidar()


@dataclass(frozen=True)
class StereoDepthCamera:
    """An active stereo depth camera (RealSense-D435-like, 848 x 480 mode), at the simulator's depth
    camera pose. The image is aligned to the left imager, whose leftmost columns have no partner in the
    right imager within the disparity search range: that band is always 0 (invalid)."""

    intrinsics: CameraIntrinsics = CAMERA_MODELS["D435 848x480"]
    baseline_m: float = DEPTH_BASELINE_M
    min_depth_m: float = DEPTH_MIN_M  # sets the disparity search range, hence the band's width

    @property
    def invalid_band_px(self) -> int:
        """Width of the invalid band on the left edge: the largest disparity searched, fx * B / min z."""
        k = self.intrinsics
        return min(k.width, int(np.ceil(k.fx * self.baseline_m / self.min_depth_m)))


D435 = StereoDepthCamera()


# --- geometry helpers ------------------------------------------------------------------------------------


def _ring_elevations(lidar: SpinningLidar) -> np.ndarray:
    """Beam elevations (radians), ring 0 at the top."""
    half = np.deg2rad(lidar.vertical_fov_deg) / 2
    return np.linspace(half, -half, lidar.rings)


def _column_azimuths(lidar: SpinningLidar) -> np.ndarray:
    """Azimuth (radians) of each column: pi at column 0, decreasing (clockwise)."""
    return np.pi - 2 * np.pi * np.arange(lidar.columns) / lidar.columns


@lru_cache(maxsize=8)
def spinning_directions(lidar: SpinningLidar) -> np.ndarray:
    """(rings, columns, 3) float32 unit beam directions in the LiDAR frame (read-only)."""
    el, az = np.meshgrid(_ring_elevations(lidar), _column_azimuths(lidar), indexing="ij")
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    dirs = dirs.astype(np.float32)
    dirs.setflags(write=False)
    return dirs


@lru_cache(maxsize=8)
def _room(environment: int) -> tuple[np.ndarray, np.ndarray]:
    return room_mesh(room_of(environment))


@lru_cache(maxsize=16)
def _lidar_background(environment: int, lidar: SpinningLidar, pose: Pose) -> np.ndarray:
    """Ranges (rings, columns) of the empty room, cast once per room, LiDAR and pose (read-only)."""
    ranges = cast(*_room(environment), pose, spinning_directions(lidar))
    ranges.setflags(write=False)
    return ranges


@lru_cache(maxsize=8)
def _depth_renderer(environment: int, intrinsics: CameraIntrinsics, pose: Pose) -> DepthRenderer:
    return DepthRenderer(*_room(environment), intrinsics, pose)


def _beam_window(lidar: SpinningLidar, pose: Pose, vertices: np.ndarray) -> tuple[slice, slice]:
    """Rings and columns whose beams can hit the given vertices (room frame); all columns when the
    vertices straddle the back seam (column 0) or surround the sensor."""
    rel = pose.from_base(vertices)
    azimuth = np.arctan2(rel[:, 1], rel[:, 0])
    elevation = np.arctan2(rel[:, 2], np.hypot(rel[:, 0], rel[:, 1]))
    half = np.deg2rad(lidar.vertical_fov_deg) / 2
    ring = (half - elevation) / (2 * half / (lidar.rings - 1))
    col = (np.pi - azimuth) * lidar.columns / (2 * np.pi)  # in [0, columns]
    r0 = int(np.clip(np.floor(ring.min()) - 1, 0, lidar.rings))
    r1 = int(np.clip(np.ceil(ring.max()) + 2, 0, lidar.rings))
    if col.max() - col.min() > lidar.columns / 2:
        return slice(r0, r1), slice(0, lidar.columns)
    c0 = int(np.clip(np.floor(col.min()) - 1, 0, lidar.columns))
    c1 = int(np.clip(np.ceil(col.max()) + 2, 0, lidar.columns))
    return slice(r0, r1), slice(c0, c1)


def _spin_ranges(lidar: SpinningLidar, ranges: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise-free ranges (rings, columns; inf = no hit) -> measured ranges, 0 = no return."""
    r = np.where(np.isfinite(ranges), ranges, lidar.max_range_m)
    # Mixed pixels: where neighbouring columns differ by > 0.3 m the footprint covers both surfaces;
    # the farther beam sometimes reports a range in between.
    step = np.diff(r, axis=1, append=r[:, :1])  # r[c + 1] - r[c], wrapping around the turn
    edge = (np.abs(step) > 0.3) & (rng.random(step.shape) < lidar.mixed_pixel_prob)
    ring, col = np.nonzero(edge)
    if ring.size:
        nxt = (col + 1) % lidar.columns
        far_col = np.where(r[ring, col] > r[ring, nxt], col, nxt)
        near = np.minimum(r[ring, col], r[ring, nxt])
        far = np.minimum(np.maximum(r[ring, col], r[ring, nxt]), near + 3.0)
        r[ring, far_col] = near + rng.uniform(0.1, 0.9, ring.size) * (far - near)
    measured, valid = _measure(lidar, r, np.isfinite(ranges), rng)
    return np.where(valid, measured, 0.0)


def _measure(
    lidar: SpinningLidar | LivoxLidar, ranges: np.ndarray, hit: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Range noise, then which returns are valid: a hit, within the sensor's range, not dropped out."""
    measured = ranges + rng.normal(0.0, lidar.range_std_m, ranges.shape)
    valid = (
        hit
        & (measured >= lidar.min_range_m)
        & (measured < lidar.max_range_m)
        & (rng.random(ranges.shape) >= lidar.dropout)
    )
    return measured, valid


def _livox_directions(livox: LivoxLidar, frame: int) -> np.ndarray:
    """(points_per_frame, 3) unit directions of one frame of the rosette (LiDAR frame)."""
    n = livox.points_per_frame
    t = (frame * n + np.arange(n)) / (n * FRAME_RATE_HZ)  # seconds since the sensor started
    half = np.deg2rad(livox.fov_deg) / 2
    # Two counter-rotating prisms at incommensurate rates (rad/s): a rosette that never closes.
    w1, w2 = 2 * np.pi * 1193.7, 2 * np.pi * 731.3
    h = half / 2 * (np.cos(w1 * t) + np.cos(w2 * t))  # left of +x
    v = half / 2 * (np.sin(w1 * t) - np.sin(w2 * t))  # above +x
    off = np.hypot(h, v)
    scale = np.divide(np.sin(off), off, out=np.ones_like(off), where=off > 1e-12)
    return np.stack([np.cos(off), h * scale, v * scale], axis=-1).astype(np.float32)


# --- the simulator ---------------------------------------------------------------------------------------


def ground_truth_joints(
    subject: int,
    action: int,
    num_frames: int = layout.FRAMES_PER_SEQUENCE,
    seed: int = 0,
    rig: Rig = MMFI_RIG,
) -> np.ndarray:
    """(F, 17, 3) float64 joints in the base frame, the same as simulate_sequence(..., rig=rig).joints."""
    return DriverSimulator(subject, action, num_frames, seed, rig).joints


class DriverSimulator:
    """One subject performing one action in its MM-Fi room (same placement and motion as
    simulate_sequence with the same arguments and rig), seen by full-size sensors as their drivers
    publish them, mounted at the rig's poses (default: MM-Fi's rig)."""

    def __init__(
        self,
        subject: int,
        action: int,
        num_frames: int = layout.FRAMES_PER_SEQUENCE,
        seed: int = 0,
        rig: Rig = MMFI_RIG,
        placement: Pose | None = None,
    ) -> None:
        self.rig, self.placement, self.body, self.joints = sequence_setup(
            subject, action, num_frames, seed, rig, placement
        )
        self.environment = layout.environment_of(subject)
        self.subject, self.action, self.num_frames, self.seed = subject, action, num_frames, seed
        self.timestamps = np.arange(num_frames) / FRAME_RATE_HZ
        self._joints_room = self.placement.to_base(self.joints)
        self._depth_pose = self.placement.compose(self.rig.depth_pose)  # room frame
        self._lidar_pose = self.placement.compose(self.rig.lidar_pose)

    def joints_in(self, frame_id: str = "base") -> np.ndarray:
        """(F, 17, 3) ground truth in "base" (midas_base), "room", "lidar" (all LiDARs here) or
        "depth_optical" coordinates."""
        if frame_id == "base":
            return self.joints.copy()
        if frame_id == "room":
            return self._joints_room.copy()
        if frame_id == "lidar":
            return self.rig.lidar_pose.from_base(self.joints)
        if frame_id == "depth_optical":
            rel = self.rig.depth_pose.from_base(self.joints)
            return np.stack([-rel[..., 1], -rel[..., 2], rel[..., 0]], axis=-1)
        raise ValueError(f"frame_id must be 'base', 'room', 'lidar' or 'depth_optical', got {frame_id!r}")

    def _rng(self, sensor: str, frame: int) -> np.random.Generator:
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"frame {frame} outside 0..{self.num_frames - 1}")
        return np.random.default_rng([self.seed, self.subject, self.action, _SALT[sensor], frame])

    def _mesh(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        return body_mesh(self._joints_room[frame], self.body)

    def _spin(self, frame: int, lidar: SpinningLidar, sensor: str) -> tuple[np.ndarray, np.ndarray]:
        """Measured ranges (rings, columns), 0 = no return, and the beam directions."""
        rng = self._rng(sensor, frame)
        verts, tris = self._mesh(frame)
        ranges = _lidar_background(self.environment, lidar, self._lidar_pose).copy()
        rings, cols = _beam_window(lidar, self._lidar_pose, verts)
        dirs = spinning_directions(lidar)
        if ranges[rings, cols].size:
            hit = cast(verts, tris, self._lidar_pose, dirs[rings, cols])
            np.minimum(ranges[rings, cols], hit, out=ranges[rings, cols])
        return _spin_ranges(lidar, ranges, rng), dirs

    def ouster_scan(self, frame: int, lidar: SpinningLidar = OS1_64) -> np.ndarray:
        """(rings, columns, 3) float32 organised scan in the LiDAR frame; (0, 0, 0) = no return."""
        measured, dirs = self._spin(frame, lidar, "ouster")
        return (dirs * measured[..., None]).astype(np.float32)

    def velodyne_cloud(self, frame: int, lidar: SpinningLidar = VLP_16) -> np.ndarray:
        """(N, 3) float32 unorganised cloud (firing order: column by column), no-returns left out as
        velodyne_pointcloud does by default."""
        measured, dirs = self._spin(frame, lidar, "velodyne")
        points = (dirs * measured[..., None]).astype(np.float32).transpose(1, 0, 2).reshape(-1, 3)
        return points[measured.T.ravel() > 0]

    def livox_cloud(self, frame: int, livox: LivoxLidar = LIVOX_MID40) -> np.ndarray:
        """(points_per_frame, 3) float32 in the LiDAR frame, in scan order; no-return rows are NaN."""
        rng = self._rng("livox", frame)
        room_v, room_t = _room(self.environment)
        body_v, body_t = self._mesh(frame)
        verts = np.concatenate([room_v, body_v])
        tris = np.concatenate([room_t, body_t + np.uint32(len(room_v))])
        dirs = _livox_directions(livox, frame)
        ranges = cast(verts, tris, self._lidar_pose, dirs).astype(np.float64)
        measured, valid = _measure(livox, ranges, np.isfinite(ranges), rng)
        points = (dirs * np.where(valid, measured, np.nan)[:, None]).astype(np.float32)
        return points

    def depth_frame(self, frame: int, camera: StereoDepthCamera = D435) -> np.ndarray:
        """(height, width) uint16 depth in mm (16UC1, REP 118), 0 = invalid: noise, IR shadow, holes at
        edges, speckle, out-of-range, and the invalid band on the left edge."""
        renderer = _depth_renderer(self.environment, camera.intrinsics, self._depth_pose)
        truth = renderer.render(*self._mesh(frame))
        depth = add_depth_noise(
            truth, self._rng("depth", frame), fx=camera.intrinsics.fx, baseline_m=camera.baseline_m
        )
        depth[:, : camera.invalid_band_px] = 0
        return depth

    def depth_frame_m(self, frame: int, camera: StereoDepthCamera = D435) -> np.ndarray:
        """The same frame as depth_frame as (height, width) float32 metres (32FC1), NaN = invalid."""
        return depth_mm_to_m(self.depth_frame(frame, camera))


def depth_mm_to_m(depth_mm: np.ndarray) -> np.ndarray:
    """16UC1 millimetres (0 = invalid) -> 32FC1 metres (NaN = invalid), as a driver's float stream."""
    metres = depth_mm.astype(np.float32) * np.float32(0.001)
    metres[depth_mm == 0] = np.nan
    return metres

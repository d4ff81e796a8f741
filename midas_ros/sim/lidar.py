"""LiDAR: a spinning multi-beam scan (any midas_ros.rig.LidarModel) at any pose, ray cast.

Points come out in the LiDAR's own frame as a driver publishes them; only the forward sector that can
see the sensing area is cast (people stand in front of the rig). Person-centred clouds as MM-Fi stores
them are cut from these by midas_ros.preprocess.crop_person, from the points alone.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from midas_ros.rig import LidarModel, Pose
from midas_ros.sim.raycast import cast

LIDAR_SECTOR_DEG = 75.0  # half-width of the cast sector around the LiDAR's +x
LIDAR_RANGE_STD_M = 0.015  # OS1 precision is about +-1.5..5 cm
LIDAR_MAX_RANGE_M = 40.0
LIDAR_DROPOUT = 0.02  # returns lost at random (dark clothing, low incidence)


@lru_cache(maxsize=8)
def beam_directions(model: LidarModel, sector_deg: float = LIDAR_SECTOR_DEG) -> np.ndarray:
    """(rings, columns in the sector, 3) unit ray directions in the LiDAR frame, ring 0 the top beam."""
    half_fov = np.deg2rad(model.vertical_fov_deg) / 2
    elevation = np.linspace(half_fov, -half_fov, model.rings)
    step = 2 * np.pi / model.columns
    half = int(np.ceil(np.deg2rad(sector_deg) / step))
    azimuth = np.arange(-half, half + 1) * step
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    dirs = dirs.astype(np.float32)
    dirs.setflags(write=False)
    return dirs


def _beam_window(
    model: LidarModel, pose: Pose, vertices: np.ndarray, shape: tuple[int, int]
) -> tuple[slice, slice]:
    """Rings and sector columns whose beams can hit the given vertices (mesh frame)."""
    rel = pose.from_base(vertices)
    azimuth = np.arctan2(rel[:, 1], rel[:, 0])
    elevation = np.arctan2(rel[:, 2], np.hypot(rel[:, 0], rel[:, 1]))
    half_fov = np.deg2rad(model.vertical_fov_deg) / 2
    ring = (half_fov - elevation) / (2 * half_fov / (model.rings - 1))
    step = 2 * np.pi / model.columns
    col = azimuth / step + (shape[1] - 1) / 2
    r0 = int(np.clip(np.floor(ring.min()) - 1, 0, shape[0]))
    r1 = int(np.clip(np.ceil(ring.max()) + 2, 0, shape[0]))
    c0 = int(np.clip(np.floor(col.min()) - 1, 0, shape[1]))
    c1 = int(np.clip(np.ceil(col.max()) + 2, 0, shape[1]))
    return slice(r0, r1), slice(c0, c1)


class LidarScanner:
    """Scans the static room once, then per frame only the body, keeping the nearer return per beam.

    pose: the LiDAR's pose in the room frame (the mesh's frame).
    """

    def __init__(
        self, room_vertices: np.ndarray, room_triangles: np.ndarray, model: LidarModel, pose: Pose
    ) -> None:
        self.model, self.pose = model, pose
        self.dirs = beam_directions(model)
        self.background = cast(room_vertices, room_triangles, pose, self.dirs)

    def scan(
        self, body_vertices: np.ndarray, body_triangles: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Sector points (N, 3) float64 in the LiDAR frame with range noise, dropouts and mixed returns
        at range edges (a beam straddling a silhouette reports a point in between)."""
        ranges = self.background.copy()
        rings, cols = _beam_window(self.model, self.pose, body_vertices, ranges.shape)
        if ranges[rings, cols].size:  # empty when the body is outside the scanned sector
            hit = cast(body_vertices, body_triangles, self.pose, self.dirs[rings, cols])
            ranges[rings, cols] = np.minimum(ranges[rings, cols], hit)
        valid = np.isfinite(ranges) & (ranges < LIDAR_MAX_RANGE_M)
        noisy = ranges + rng.normal(0.0, LIDAR_RANGE_STD_M, ranges.shape)
        valid &= rng.random(ranges.shape) >= LIDAR_DROPOUT
        dirs = self.dirs.astype(np.float64)
        points = [dirs[valid] * noisy[valid, None]]

        # Mixed pixels: where neighbouring beams of a ring differ by more than 0.3 m, the beam footprint
        # covers both surfaces and sometimes yields a spurious point between them.
        r = np.where(np.isfinite(ranges), ranges, LIDAR_MAX_RANGE_M)
        edge = np.abs(np.diff(r, axis=1)) > 0.3
        ring, col = np.nonzero(edge & (rng.random(edge.shape) < 0.15))
        if ring.size:
            near = np.minimum(r[ring, col], r[ring, col + 1])
            far = np.minimum(np.maximum(r[ring, col], r[ring, col + 1]), near + 3.0)
            mixed = near + rng.uniform(0.1, 0.9, ring.size) * (far - near)
            points.append(dirs[ring, col] * mixed[:, None])
        return np.concatenate(points)

"""LiDAR: Ouster-OS1-32-like spinning scan (32 rings over +-22.5 deg, 1024 columns a turn), ray cast.

Points are in the LiDAR frame (at LIDAR_POSITION in the room, axes parallel to the room's), float64, and
cropped to a jittered box around the person the way MM-Fi's human-centred clouds are.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import open3d as o3d

from midas_ros.sim.sensors import LIDAR_COLUMNS, LIDAR_POSITION, LIDAR_RINGS, LIDAR_VERTICAL_FOV_DEG

# Only the forward sector can see the sensing area (|azimuth| < ~40 deg); the rest of the turn is not cast.
LIDAR_SECTOR_DEG = 60.0
LIDAR_RANGE_STD_M = 0.015  # OS1 precision is about +-1.5..5 cm
LIDAR_MAX_RANGE_M = 40.0
LIDAR_DROPOUT = 0.02  # returns lost at random (dark clothing, low incidence)


@lru_cache(maxsize=1)
def beam_directions() -> np.ndarray:
    """(rings, columns in the sector, 3) unit ray directions in the LiDAR frame."""
    elevation = np.deg2rad(np.linspace(-LIDAR_VERTICAL_FOV_DEG / 2, LIDAR_VERTICAL_FOV_DEG / 2, LIDAR_RINGS))
    step = 2 * np.pi / LIDAR_COLUMNS
    half = int(np.ceil(np.deg2rad(LIDAR_SECTOR_DEG) / step))
    azimuth = np.arange(-half, half + 1) * step
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    dirs = dirs.astype(np.float32)
    dirs.setflags(write=False)
    return dirs


def _cast(vertices: np.ndarray, triangles: np.ndarray, rings: slice = slice(None), cols: slice = slice(None)):
    """Range along each beam (rings, columns) from the LiDAR to the mesh (room frame), inf if no hit."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices), o3d.core.Tensor(triangles))
    dirs = beam_directions()[rings, cols]
    origin = np.broadcast_to(np.asarray(LIDAR_POSITION, dtype=np.float32), dirs.shape)
    rays = np.ascontiguousarray(np.concatenate([origin, dirs], axis=-1), dtype=np.float32)
    # A copy: .numpy() is a view that keeps open3d's buffer alive, and open3d exits the process with
    # status 1 when its buffers outlive it (a cached background would).
    return scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().copy()


def _beam_window(vertices: np.ndarray) -> tuple[slice, slice]:
    """Rings and columns of the sector whose beams can hit the given vertices (room frame)."""
    rel = vertices.astype(np.float64) - np.asarray(LIDAR_POSITION)
    azimuth = np.arctan2(rel[:, 1], rel[:, 0])
    elevation = np.arctan2(rel[:, 2], np.hypot(rel[:, 0], rel[:, 1]))
    dirs = beam_directions()
    ring_el = np.arcsin(np.clip(dirs[:, 0, 2], -1.0, 1.0))
    col_az = np.arctan2(dirs[0, :, 1], dirs[0, :, 0])
    r0 = max(int(np.searchsorted(ring_el, elevation.min())) - 1, 0)
    r1 = int(np.searchsorted(ring_el, elevation.max())) + 1
    c0 = max(int(np.searchsorted(col_az, azimuth.min())) - 1, 0)
    c1 = int(np.searchsorted(col_az, azimuth.max())) + 1
    return slice(r0, r1), slice(c0, c1)


class LidarScanner:
    """Scans the static room once, then per frame only the body, keeping the nearer return per beam."""

    def __init__(self, room_vertices: np.ndarray, room_triangles: np.ndarray) -> None:
        self.background = _cast(room_vertices, room_triangles)

    def scan(self, body_vertices: np.ndarray, body_triangles: np.ndarray, rng: np.random.Generator):
        """Full-sector points (N, 3) float64 in the LiDAR frame with range noise, dropouts and mixed
        returns at range edges (a beam straddling a silhouette reports a point in between)."""
        # Cast only the beams inside the body's angular box; the others see the room.
        ranges = self.background.copy()
        rings, cols = _beam_window(body_vertices)
        if ranges[rings, cols].size:  # empty when the body is outside the scanned sector
            hit = _cast(body_vertices, body_triangles, rings, cols)
            ranges[rings, cols] = np.minimum(ranges[rings, cols], hit)
        valid = np.isfinite(ranges) & (ranges < LIDAR_MAX_RANGE_M)
        noisy = ranges + rng.normal(0.0, LIDAR_RANGE_STD_M, ranges.shape)
        valid &= rng.random(ranges.shape) >= LIDAR_DROPOUT
        dirs = beam_directions().astype(np.float64)
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


def crop_to_person(
    points: np.ndarray, joints_lidar: np.ndarray, rng: np.random.Generator, clutter: int = 3
) -> np.ndarray:
    """Keep the points inside a jittered box around the person (as a detector's box), plus a few spurious
    returns inside it. joints_lidar: (17, 3) joints in the LiDAR frame."""
    lo = joints_lidar.min(axis=0) - np.array([0.25, 0.25, 0.12])
    hi = joints_lidar.max(axis=0) + np.array([0.25, 0.25, 0.2])
    lo = lo + rng.normal(0.0, 0.06, 3)
    hi = hi + rng.normal(0.0, 0.06, 3)
    inside = np.all((points >= lo) & (points <= hi), axis=1)
    n_spurious = rng.poisson(clutter)
    spurious = lo + rng.random((n_spurious, 3)) * (hi - lo)
    return np.concatenate([points[inside], spurious]).astype(np.float64)

"""Ray casting against triangle meshes (open3d), shared by the simulated depth cameras and LiDARs."""

from __future__ import annotations

import numpy as np
import open3d as o3d

from midas_ros.rig import Pose


def cast(vertices: np.ndarray, triangles: np.ndarray, pose: Pose, dirs: np.ndarray) -> np.ndarray:
    """Hit distance along each direction (..., 3) of the sensor frame at `pose` (the mesh's frame), in
    units of the direction's length (unit vectors: range; x = 1 camera rays: z-depth); inf = no hit."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices), o3d.core.Tensor(triangles))
    world = (dirs.reshape(-1, 3) @ pose.rotation().T.astype(np.float32)).reshape(dirs.shape)
    origin = np.broadcast_to(pose.translation.astype(np.float32), dirs.shape)
    rays = np.ascontiguousarray(np.concatenate([origin, world], axis=-1), dtype=np.float32)
    # A copy: .numpy() is a view that keeps open3d's buffer alive, and open3d exits the process with
    # status 1 when its buffers outlive it (a cached background would).
    return scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().copy()

"""Depth camera: ray-cast z-depth of the room and the body, with RealSense-D435-like noise.

A camera has intrinsics (midas_ros.rig.CameraIntrinsics) and a pose in the room (its camera_link frame:
x along the optical axis, y left, z up). The image is the optical frame's: values are z-depth in mm
along the optical axis, 0 = no return, column u to the right, row v down.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from midas_ros.rig import MMFI_RIG, CameraIntrinsics, Pose
from midas_ros.sim.raycast import cast

# Active stereo: depth z = f * B / disparity. Disparity noise of a fraction of a pixel gives the
# z^2 growth of the error; the baseline also casts an IR shadow left of near objects.
DEPTH_BASELINE_M = 0.05
DEPTH_SUBPIXEL_STD = 0.08  # disparity noise, pixels (D435 datasheet: subpixel RMS 0.08)
DEPTH_SUBPIXEL_STEPS = 32  # disparity is reported in 1/32 pixel steps, so far depth comes in steps
DEPTH_MIN_M = 0.2
DEPTH_MAX_M = 10.0


SIM_INTRINSICS = MMFI_RIG.depth_intrinsics
SIM_CAMERA_POSE = MMFI_RIG.depth_pose  # in the room frame, for the MM-Fi rig at the room's origin


@lru_cache(maxsize=8)
def _pixel_directions(intrinsics: CameraIntrinsics) -> np.ndarray:
    """(H, W, 3) camera_link ray directions scaled so their x component is 1 (so ray t = z-depth)."""
    k = intrinsics
    u = np.arange(k.width, dtype=np.float32)
    v = np.arange(k.height, dtype=np.float32)
    uu, vv = np.meshgrid(u, v)
    dirs = np.stack([np.ones_like(uu), -(uu - k.cx) / k.fx, -(vv - k.cy) / k.fy], axis=-1)
    dirs.setflags(write=False)
    return dirs


def project_to_pixels(
    points: np.ndarray, intrinsics: CameraIntrinsics = SIM_INTRINSICS, camera_pose: Pose = SIM_CAMERA_POSE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (..., 3) in the camera pose's parent frame -> (u, v, z): pixel column, row, z-depth (m)."""
    k = intrinsics
    rel = camera_pose.from_base(points)
    z = rel[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = k.cx - k.fx * rel[..., 1] / z
        v = k.cy - k.fy * rel[..., 2] / z
    return u, v, z


class DepthRenderer:
    """Renders noise-free z-depth: the static room once, then per frame only the body's image box.

    camera_pose: the camera's pose in the room frame (the mesh's frame).
    """

    def __init__(
        self,
        room_vertices: np.ndarray,
        room_triangles: np.ndarray,
        intrinsics: CameraIntrinsics = SIM_INTRINSICS,
        camera_pose: Pose = SIM_CAMERA_POSE,
    ) -> None:
        self.intrinsics = intrinsics
        self.camera_pose = camera_pose
        self.background = cast(room_vertices, room_triangles, camera_pose, _pixel_directions(intrinsics))

    def render(self, body_vertices: np.ndarray, body_triangles: np.ndarray) -> np.ndarray:
        """(H, W) float32 z-depth in metres (inf = no hit) of the room with the body in it."""
        depth = self.background.copy()
        k = self.intrinsics
        u, v, z = project_to_pixels(body_vertices, k, self.camera_pose)
        front = z > 0.05
        if not front.any():
            return depth
        u0 = int(np.clip(np.floor(u[front].min()) - 1, 0, k.width))
        u1 = int(np.clip(np.ceil(u[front].max()) + 2, 0, k.width))
        v0 = int(np.clip(np.floor(v[front].min()) - 1, 0, k.height))
        v1 = int(np.clip(np.ceil(v[front].max()) + 2, 0, k.height))
        if u1 <= u0 or v1 <= v0:
            return depth
        hit = cast(body_vertices, body_triangles, self.camera_pose, _pixel_directions(k)[v0:v1, u0:u1])
        np.minimum(depth[v0:v1, u0:u1], hit, out=depth[v0:v1, u0:u1])
        return depth


_NOISE_CELL = 8  # pixels per cell of the correlated part of the disparity noise


@lru_cache(maxsize=4)
def _upsample_index(n_out: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower coarse-grid index and weight of each of n_out pixels, for linear interpolation."""
    pos = np.arange(n_out) / factor
    lo = np.floor(pos).astype(np.intp)
    return lo, (pos - lo).astype(np.float32)


def _upsample(coarse: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    """Bilinear upsampling of a coarse grid ((H // factor + 2) x (W // factor + 2)) to shape.

    Gathers instead of a matrix product: BLAS threads thrash on a busy machine.
    """
    lo, w = _upsample_index(shape[0], factor)
    rows = coarse[lo] * (1 - w)[:, None] + coarse[lo + 1] * w[:, None]
    lo, w = _upsample_index(shape[1], factor)
    return rows[:, lo] * (1 - w) + rows[:, lo + 1] * w


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Grow a boolean mask by one pixel (4-neighbourhood)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _ir_shadow(disparity: np.ndarray) -> np.ndarray:
    """Pixels the second imager cannot see: background just left of a nearer surface.

    A pixel at column c is hidden when some pixel at c + k lies k or more disparity pixels nearer.
    """
    shadow = np.zeros(disparity.shape, dtype=bool)
    max_shift = int(np.ceil(disparity.max() - disparity.min()))
    for k in range(1, min(max_shift, 24) + 1):
        shadow[:, :-k] |= disparity[:, k:] - disparity[:, :-k] >= k
    return shadow


def add_depth_noise(
    depth_m: np.ndarray,
    rng: np.random.Generator,
    *,
    fx: float = SIM_INTRINSICS.fx,
    baseline_m: float = DEPTH_BASELINE_M,
) -> np.ndarray:
    """Noise-free z-depth (H, W) metres (inf = no hit) -> (H, W) uint16 mm as a D435 would report it.

    Disparity noise (mostly spatially correlated, as from block matching) quantised to 1/32 pixel gives
    an error and depth steps growing with z^2; returns vanish in the IR shadow and, at random, along
    depth discontinuities (the matcher fails on mixed windows), plus a sprinkle of isolated holes;
    out-of-range depth is 0. fx (pixels) and baseline_m set the disparity (defaults: the simulator's).
    """
    fb = np.float32(fx * baseline_m)
    depth_m = depth_m.astype(np.float32, copy=False)
    finite = np.isfinite(depth_m)
    disparity = np.zeros_like(depth_m)
    np.divide(fb, depth_m, out=disparity, where=finite)
    height, width = depth_m.shape
    coarse = rng.standard_normal((height // _NOISE_CELL + 2, width // _NOISE_CELL + 2), dtype=np.float32)
    correlated = _upsample(coarse, (height, width), _NOISE_CELL)
    fine = rng.standard_normal((height, width), dtype=np.float32)
    # noisy = disparity + std * (0.9 * correlated + 0.45 * fine), in place (this loop is the hot path)
    noisy = correlated
    noisy *= np.float32(0.9)
    fine *= np.float32(0.45)
    noisy += fine
    noisy *= np.float32(DEPTH_SUBPIXEL_STD)
    noisy += disparity
    noisy *= np.float32(DEPTH_SUBPIXEL_STEPS)
    np.round(noisy, out=noisy)
    noisy /= np.float32(DEPTH_SUBPIXEL_STEPS)

    valid = finite & (noisy > 0)
    z = np.zeros_like(depth_m)
    np.divide(fb, noisy, out=z, where=valid)
    valid &= (z >= DEPTH_MIN_M) & (z <= DEPTH_MAX_M)
    valid &= ~_ir_shadow(disparity)

    # Depth discontinuities: the matching window straddles two surfaces there. Pixels on either side
    # of a jump often fail, their neighbours sometimes.
    zc = depth_m if finite.all() else np.where(finite, depth_m, np.float32(2 * DEPTH_MAX_M))
    jump = np.zeros_like(valid)
    dz_x = np.abs(np.diff(zc, axis=1)) > 0.05 + 0.03 * np.minimum(zc[:, 1:], zc[:, :-1])
    dz_y = np.abs(np.diff(zc, axis=0)) > 0.05 + 0.03 * np.minimum(zc[1:, :], zc[:-1, :])
    jump[:, 1:] |= dz_x
    jump[:, :-1] |= dz_x
    jump[1:, :] |= dz_y
    jump[:-1, :] |= dz_y
    near = np.flatnonzero(_dilate(jump))
    p_drop = np.where(jump.ravel()[near], np.float32(0.5), np.float32(0.15))
    drop = near[rng.random(near.size, dtype=np.float32) < p_drop]
    holes = rng.integers(0, valid.size, rng.binomial(valid.size, 0.002))  # isolated speckle holes
    # .flat takes C-order indices whatever the memory layout numpy chose for valid
    valid.flat[drop] = False
    valid.flat[holes] = False
    out = np.where(valid, np.round(z * np.float32(1000.0)), np.float32(0)).astype(np.uint16)
    return np.ascontiguousarray(out)

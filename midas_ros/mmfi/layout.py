"""MM-Fi's on-disk layout: names, numbering and the file formats of each modality.

ROOT/E01..E04/Sxx/A01..A27/{depth,lidar,wifi-csi}/frameNNN.{png,bin,mat} and ground_truth.npy.
Both the simulator (writer) and the loader (reader) go through these functions, so the two cannot drift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from midas_ros.interfaces import CSI_RAW_SHAPE

FRAMES_PER_SEQUENCE = 297
NUM_ENVIRONMENTS = 4
SUBJECTS_PER_ENVIRONMENT = 10
NUM_SUBJECTS = NUM_ENVIRONMENTS * SUBJECTS_PER_ENVIRONMENT
NUM_ACTIONS = 27

# MM-Fi folder name and file suffix of each modality the model uses.
MODALITY_FOLDERS: dict[str, str] = {"depth": "depth", "lidar": "lidar", "csi": "wifi-csi"}
MODALITY_SUFFIXES: dict[str, str] = {"depth": ".png", "lidar": ".bin", "csi": ".mat"}

CSI_SHAPE = CSI_RAW_SHAPE  # antennas x subcarriers x packets
CSI_ANTENNAS, CSI_SUBCARRIERS, CSI_PACKETS = CSI_SHAPE

ACTION_NAMES: dict[int, str] = {
    1: "Stretching and relaxing",
    2: "Chest expansion (horizontal)",
    3: "Chest expansion (vertical)",
    4: "Twist (left)",
    5: "Twist (right)",
    6: "Mark time",
    7: "Limb extension (left)",
    8: "Limb extension (right)",
    9: "Lunge (toward left-front)",
    10: "Lunge (toward right-front)",
    11: "Limb extension (both)",
    12: "Squat",
    13: "Raising hand (left)",
    14: "Raising hand (right)",
    15: "Lunge (toward left side)",
    16: "Lunge (toward right side)",
    17: "Waving hand (left)",
    18: "Waving hand (right)",
    19: "Picking up things",
    20: "Throwing (toward left side)",
    21: "Throwing (toward right side)",
    22: "Kicking (toward left side)",
    23: "Kicking (toward right side)",
    24: "Body extension (left)",
    25: "Body extension (right)",
    26: "Jumping up",
    27: "Bowing",
}
# MM-Fi protocols: P1 daily actions, P2 rehabilitation actions, P3 all 27.
P1_ACTIONS: tuple[int, ...] = (2, 3, 4, 5, 13, 14, 17, 18, 19, 20, 21, 22, 23, 27)
P2_ACTIONS: tuple[int, ...] = (1, 6, 7, 8, 9, 10, 11, 12, 15, 16, 24, 25, 26)
PROTOCOLS: dict[str, tuple[int, ...]] = {
    "P1": P1_ACTIONS,
    "P2": P2_ACTIONS,
    "P3": tuple(range(1, NUM_ACTIONS + 1)),
}


def environment_of(subject: int) -> int:
    """MM-Fi's fixed subject -> environment map: S01-S10 in E01, S11-S20 in E02, and so on."""
    if not 1 <= subject <= NUM_SUBJECTS:
        raise ValueError(f"subject must be 1..{NUM_SUBJECTS}, got {subject}")
    return (subject - 1) // SUBJECTS_PER_ENVIRONMENT + 1


def sequence_dir(root: Path | str, subject: int, action: int) -> Path:
    """ROOT/Exx/Sxx/Axx for one subject and action."""
    if not 1 <= action <= NUM_ACTIONS:
        raise ValueError(f"action must be 1..{NUM_ACTIONS}, got {action}")
    return Path(root) / f"E{environment_of(subject):02d}" / f"S{subject:02d}" / f"A{action:02d}"


def frame_path(seq_dir: Path | str, modality: str, frame: int) -> Path:
    """seq_dir/<modality folder>/frameNNN.<suffix>; frame numbers are 1-based as in MM-Fi."""
    if frame < 1:
        raise ValueError(f"MM-Fi frame numbers start at 1, got {frame}")
    folder = MODALITY_FOLDERS[modality]
    return Path(seq_dir) / folder / f"frame{frame:03d}{MODALITY_SUFFIXES[modality]}"


def frame_number(path: Path | str) -> int:
    """The frame number in a name like frame007.png; raises ValueError for other names."""
    stem = Path(path).stem
    if not stem.startswith("frame") or not stem[5:].isdigit():
        raise ValueError(f"not an MM-Fi frame file name: {Path(path).name!r}")
    return int(stem[5:])


# --- depth: 16-bit PNG in millimetres, 0 = no return -------------------------------------------


def write_depth_png(path: Path | str, depth_mm: np.ndarray) -> None:
    """Write an (H, W) depth image in millimetres (0 = no return) as a 16-bit grayscale PNG."""
    depth_mm = np.asarray(depth_mm)
    if depth_mm.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth_mm.shape}")
    if depth_mm.dtype != np.uint16:
        if np.any(depth_mm < 0) or np.any(depth_mm > np.iinfo(np.uint16).max):
            raise ValueError("depth in mm must lie in 0..65535")
        depth_mm = np.round(depth_mm).astype(np.uint16)
    Image.fromarray(depth_mm).save(path, format="PNG", compress_level=1)


def read_depth_png(path: Path | str) -> np.ndarray:
    """Read a 16-bit depth PNG as (H, W) uint16 millimetres."""
    with Image.open(path) as image:
        if image.mode not in ("I;16", "I;16B", "I"):
            raise ValueError(f"{path}: expected a 16-bit grayscale PNG, got mode {image.mode}")
        return np.asarray(image).astype(np.uint16)


# --- lidar: raw float64, reshape (-1, 3) ----------------------------------------------------------


def write_lidar_bin(path: Path | str, points: np.ndarray) -> None:
    """Write an (N, 3) point cloud in metres as raw float64, MM-Fi's .bin format."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got shape {points.shape}")
    points.tofile(path)


def read_lidar_bin(path: Path | str) -> np.ndarray:
    """Read an MM-Fi LiDAR .bin as (N, 3) float64 metres."""
    raw = np.fromfile(path, dtype=np.float64)
    if raw.size % 3:
        raise ValueError(f"{path}: {raw.size} float64 values is not a multiple of 3")
    return raw.reshape(-1, 3)


# --- wifi-csi: .mat with CSIamp and CSIphase, 3 x 114 x 10 ------------------------------------------


_MAT_HEADER_TEXT = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: midas_ros.sim"


def write_csi_mat(path: Path | str, amplitude: np.ndarray, phase: np.ndarray) -> None:
    """Write CSI amplitude and phase (antennas x subcarriers x packets) as MM-Fi's .mat."""
    amplitude = np.asarray(amplitude, dtype=np.float64)
    phase = np.asarray(phase, dtype=np.float64)
    if amplitude.shape != CSI_SHAPE or phase.shape != CSI_SHAPE:
        raise ValueError(f"CSI must be {CSI_SHAPE}, got {amplitude.shape} and {phase.shape}")
    scipy.io.savemat(path, {"CSIamp": amplitude, "CSIphase": phase}, do_compression=False)
    # scipy stamps the creation time into the 116-byte text header: pin it so a seed gives identical bytes.
    with open(path, "r+b") as stream:
        stream.write(_MAT_HEADER_TEXT.ljust(116, b" "))


def read_csi_mat(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read an MM-Fi CSI .mat as (amplitude, phase), each (3, 114, 10) float64 (Inf kept as is)."""
    mat = scipy.io.loadmat(path)
    for key in ("CSIamp", "CSIphase"):
        if key not in mat:
            raise ValueError(
                f"{path}: no {key!r} in the .mat (keys: {sorted(k for k in mat if not k.startswith('__'))})"
            )
    amplitude = np.asarray(mat["CSIamp"], dtype=np.float64)
    phase = np.asarray(mat["CSIphase"], dtype=np.float64)
    if amplitude.shape != CSI_SHAPE or phase.shape != CSI_SHAPE:
        raise ValueError(f"{path}: CSI must be {CSI_SHAPE}, got {amplitude.shape} and {phase.shape}")
    return amplitude, phase


# --- ground truth: (frames, 17, 3) metres -----------------------------------------------------------


def write_ground_truth(seq_dir: Path | str, joints: np.ndarray) -> None:
    """Write seq_dir/ground_truth.npy, (frames, 17, 3) float64 in metres."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (17, 3):
        raise ValueError(f"ground truth must be (frames, 17, 3), got {joints.shape}")
    np.save(Path(seq_dir) / "ground_truth.npy", joints)


def read_ground_truth(seq_dir: Path | str) -> np.ndarray:
    """Read seq_dir/ground_truth.npy as (frames, 17, 3) float64 metres (never unpickles)."""
    joints = np.load(Path(seq_dir) / "ground_truth.npy", allow_pickle=False)
    if joints.ndim != 3 or joints.shape[1:] != (17, 3):
        raise ValueError(f"{seq_dir}/ground_truth.npy: expected (frames, 17, 3), got {joints.shape}")
    return joints.astype(np.float64)

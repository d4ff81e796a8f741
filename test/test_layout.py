"""MM-Fi file formats: what layout.py writes is what MM-Fi's toolbox would read, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from midas_ros.mmfi import layout


def test_depth_png_is_16_bit_grayscale_mm_round_trip(tmp_path: Path) -> None:
    depth = np.random.default_rng(0).integers(0, 65536, size=(48, 64)).astype(np.uint16)
    depth[0, 0], depth[0, 1] = 0, 65535
    path = tmp_path / "frame001.png"
    layout.write_depth_png(path, depth)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # IHDR: bit depth 16, colour type 0 (grayscale)
    assert path.read_bytes()[24] == 16
    assert path.read_bytes()[25] == 0
    with Image.open(path) as image:
        assert image.mode.startswith("I;16")
        assert image.size == (64, 48)
    back = layout.read_depth_png(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, depth)
    # the toolbox reads millimetres and multiplies by 0.001
    assert back[0, 1] * 0.001 == pytest.approx(65.535)


def test_depth_png_from_float_mm_and_bad_input(tmp_path: Path) -> None:
    layout.write_depth_png(tmp_path / "a.png", np.array([[0.4, 1000.6]]))
    np.testing.assert_array_equal(layout.read_depth_png(tmp_path / "a.png"), [[0, 1001]])
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        layout.write_depth_png(tmp_path / "b.png", np.array([[70000.0]]))
    with pytest.raises(ValueError, match="H, W"):
        layout.write_depth_png(tmp_path / "c.png", np.zeros((2, 3, 3), dtype=np.uint16))
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "d.png")
    with pytest.raises(ValueError, match="16-bit"):
        layout.read_depth_png(tmp_path / "d.png")


def test_lidar_bin_is_raw_float64_xyz(tmp_path: Path) -> None:
    points = np.random.default_rng(1).normal(size=(37, 3))
    path = tmp_path / "frame001.bin"
    layout.write_lidar_bin(path, points.astype(np.float32))
    assert path.stat().st_size == 37 * 3 * 8
    # MM-Fi's own reading: np.fromfile(float64).reshape(-1, 3)
    np.testing.assert_allclose(np.fromfile(path, dtype=np.float64).reshape(-1, 3), points, rtol=1e-6)
    np.testing.assert_allclose(layout.read_lidar_bin(path), points, rtol=1e-6)
    with pytest.raises(ValueError, match="N, 3"):
        layout.write_lidar_bin(tmp_path / "x.bin", np.zeros((4, 5)))
    np.zeros(7).tofile(tmp_path / "bad.bin")
    with pytest.raises(ValueError, match="multiple of 3"):
        layout.read_lidar_bin(tmp_path / "bad.bin")


def test_csi_mat_keys_and_shapes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    amp, pha = rng.normal(size=layout.CSI_SHAPE), rng.normal(size=layout.CSI_SHAPE)
    amp[1, 2, 3] = np.inf
    path = tmp_path / "frame001.mat"
    layout.write_csi_mat(path, amp, pha)
    mat = scipy.io.loadmat(path)
    assert mat["CSIamp"].shape == (3, 114, 10)
    assert mat["CSIphase"].shape == (3, 114, 10)
    assert mat["CSIamp"].dtype == np.float64
    back_amp, back_pha = layout.read_csi_mat(path)
    np.testing.assert_array_equal(back_amp, amp)  # Inf survives, the preprocessing handles it
    np.testing.assert_array_equal(back_pha, pha)
    with pytest.raises(ValueError, match="CSI must be"):
        layout.write_csi_mat(tmp_path / "x.mat", amp[:, :, :5], pha)
    scipy.io.savemat(tmp_path / "y.mat", {"CSIamp": amp})
    with pytest.raises(ValueError, match="CSIphase"):
        layout.read_csi_mat(tmp_path / "y.mat")


def test_ground_truth_shape(tmp_path: Path) -> None:
    joints = np.random.default_rng(3).normal(size=(5, 17, 3))
    layout.write_ground_truth(tmp_path, joints)
    back = np.load(tmp_path / "ground_truth.npy", allow_pickle=False)
    assert back.shape == (5, 17, 3)
    np.testing.assert_array_equal(layout.read_ground_truth(tmp_path), joints)
    with pytest.raises(ValueError, match="17, 3"):
        layout.write_ground_truth(tmp_path, np.zeros((5, 16, 3)))
    np.save(tmp_path / "ground_truth.npy", np.zeros((5, 51)))
    with pytest.raises(ValueError, match="17, 3"):
        layout.read_ground_truth(tmp_path)


def test_names_and_numbering(tmp_path: Path) -> None:
    seq = layout.sequence_dir(tmp_path, 11, 27)
    assert seq == tmp_path / "E02" / "S11" / "A27"
    assert layout.frame_path(seq, "csi", 7) == seq / "wifi-csi" / "frame007.mat"
    assert layout.frame_number("frame297.bin") == 297
    assert layout.environment_of(40) == 4
    with pytest.raises(ValueError):
        layout.frame_number("img007.png")
    with pytest.raises(ValueError):
        layout.frame_path(seq, "depth", 0)
    with pytest.raises(ValueError):
        layout.environment_of(41)
    assert sorted(layout.P1_ACTIONS + layout.P2_ACTIONS) == list(range(1, 28))

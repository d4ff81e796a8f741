"""MPJPE / PA-MPJPE in the MM-Fi toolbox convention."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from midas_ros.evaluate.metrics import mpjpe_mm, pa_mpjpe_mm, pose_errors_mm, procrustes_align


def _poses(frames: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.3, size=(frames, 17, 3))


def test_mpjpe_of_a_known_offset_in_mm() -> None:
    gt = _poses()
    # Every joint 3 cm off along one direction, 4 cm along another: 50 mm.
    assert mpjpe_mm(gt + np.array([0.03, 0.0, 0.04]), gt) == pytest.approx(50.0)


def test_mpjpe_uses_coordinates_as_given_no_root_alignment() -> None:
    gt = _poses()
    shifted = gt + np.array([1.0, 0.0, 0.0])
    assert mpjpe_mm(shifted, gt) == pytest.approx(1000.0)
    assert pa_mpjpe_mm(shifted, gt) == pytest.approx(0.0, abs=1e-6)


def test_pa_mpjpe_is_zero_for_a_scaled_rotated_shifted_copy() -> None:
    gt = _poses(frames=8)
    rots = Rotation.random(8, random_state=1).as_matrix()
    pred = 1.7 * np.einsum("fjk,fik->fji", gt, rots) + np.array([0.5, -2.0, 0.3])
    assert mpjpe_mm(pred, gt) > 100.0
    assert pa_mpjpe_mm(pred, gt) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)


def test_pa_mpjpe_does_not_use_a_reflection() -> None:
    gt = _poses(frames=4)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    # A mirror image is not a similarity transform of a generic (chiral) pose: error stays positive,
    # and the fitted transform is a proper rotation (det > 0), checked through the aligned shape's handedness.
    assert pa_mpjpe_mm(mirrored, gt) > 10.0
    aligned = procrustes_align(mirrored, gt)
    centred = aligned - aligned.mean(axis=1, keepdims=True)
    src = mirrored - mirrored.mean(axis=1, keepdims=True)
    for f in range(4):
        fit, *_ = np.linalg.lstsq(src[f], centred[f], rcond=None)
        assert np.linalg.det(fit) > 0


def test_pa_mpjpe_is_never_above_mpjpe() -> None:
    gt = _poses(frames=20, seed=3)
    pred = gt + np.random.default_rng(4).normal(scale=0.05, size=gt.shape)
    errors = pose_errors_mm(pred, gt)
    assert 0.0 < errors["pa_mpjpe"] <= errors["mpjpe"]


def test_single_frame_input_is_accepted() -> None:
    gt = _poses(frames=1)[0]
    assert mpjpe_mm(gt + np.array([0.0, 0.01, 0.0]), gt) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("pred_shape", "gt_shape"),
    [((5, 17, 3), (5, 17, 2)), ((5, 17, 3), (4, 17, 3)), ((17,), (17,)), ((0, 17, 3), (0, 17, 3))],
)
def test_bad_shapes_are_rejected(pred_shape: tuple[int, ...], gt_shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        mpjpe_mm(np.zeros(pred_shape), np.zeros(gt_shape))


def test_non_finite_values_are_rejected() -> None:
    gt = _poses()
    pred = gt.copy()
    pred[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pa_mpjpe_mm(pred, gt)

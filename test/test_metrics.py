"""MPJPE / PA-MPJPE in the MM-Fi toolbox convention, and the root position and heading errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from midas_ros.evaluate.metrics import (
    FRAME_METRICS,
    facing_direction,
    frame_errors,
    heading_error_deg,
    heading_rad,
    mean_errors,
    mpjpe_mm,
    pa_mpjpe_mm,
    pose_errors_mm,
    procrustes_align,
    root_error_mm,
)


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
    assert pa_mpjpe_mm(2.0 * gt + 1.0, gt) == pytest.approx(0.0, abs=1e-6)


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


# --- placement errors: root position and heading -------------------------------------------------------


def _standing(heading: float, position: tuple[float, float] = (2.0, 1.0)) -> np.ndarray:
    """A simulated subject standing at `position`, facing `heading` (rad) in the base frame."""
    from midas_ros.sim.body import NUM_PARAMS, forward_kinematics, make_body

    return forward_kinematics(make_body(1), np.zeros((1, NUM_PARAMS)), position, heading)


@pytest.mark.parametrize("heading", [0.0, 1.0, -2.5, np.pi])
def test_heading_follows_the_simulator_body_frame(heading: float) -> None:
    # The simulator's body frame has x = facing direction, y = left: heading_rad must read it back.
    got = heading_rad(_standing(heading))[0]
    assert np.cos(got - heading) == pytest.approx(1.0)
    np.testing.assert_allclose(
        facing_direction(_standing(heading))[0], [np.cos(heading), np.sin(heading)], atol=1e-9
    )


def test_heading_error_of_a_pose_turned_30_degrees_about_z_is_30() -> None:
    pose = _standing(0.4)
    turned = Rotation.from_euler("z", 30, degrees=True).apply(pose[0])[None]
    assert heading_error_deg(turned, pose)[0] == pytest.approx(30.0)
    assert heading_error_deg(pose, turned)[0] == pytest.approx(30.0)
    assert root_error_mm(pose, pose)[0] == 0.0


def test_heading_error_wraps_around_180() -> None:
    a, b = _standing(np.radians(170)), _standing(np.radians(-170))
    assert heading_error_deg(a, b)[0] == pytest.approx(20.0)
    assert heading_error_deg(_standing(0.0), _standing(np.pi))[0] == pytest.approx(180.0)


def test_root_error_is_the_pelvis_distance_in_mm() -> None:
    pose = _standing(1.0)
    moved = pose + np.array([0.03, 0.04, 0.0])
    assert root_error_mm(moved, pose)[0] == pytest.approx(50.0)
    assert heading_error_deg(moved, pose)[0] == pytest.approx(0.0, abs=1e-9)


def test_frame_errors_average_to_the_table_metrics() -> None:
    gt = _poses(frames=6, seed=5)
    pred = gt + np.random.default_rng(6).normal(scale=0.05, size=gt.shape)
    per_frame = frame_errors(pred, gt)
    assert set(per_frame) == set(FRAME_METRICS) and all(v.shape == (6,) for v in per_frame.values())
    means = mean_errors(per_frame)
    assert means["mpjpe"] == pytest.approx(mpjpe_mm(pred, gt))
    assert means["pa_mpjpe"] == pytest.approx(pa_mpjpe_mm(pred, gt))
    mask = np.array([True, False, True, False, False, False])
    assert mean_errors(per_frame, mask)["mpjpe"] == pytest.approx(mpjpe_mm(pred[mask], gt[mask]))
    assert mean_errors(per_frame, np.zeros(6, dtype=bool)) == {}

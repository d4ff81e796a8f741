"""The person frame (model/person_frame.py) and the training augmentation that works in it."""

from __future__ import annotations

import math

import pytest
import torch

from midas_ros.interfaces import INPUT_SHAPES
from midas_ros.model import MIDAS, tiny_config
from midas_ros.model.person_frame import (
    DEPTH_RASTER_HW,
    DEPTH_RASTER_RES_M,
    choose_anchor,
    depth_raster,
    from_frame,
    points_anchor,
    to_frame,
)
from midas_ros.skeleton import BONES, LEFT_JOINTS, RIGHT_JOINTS
from midas_ros.train.augment import Augmentation, augment_points

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _person(
    batch: int, seed: int = 0, count: int = 600, centre: tuple[float, float] = (3.0, -1.0)
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    unit = torch.rand(batch, count, 3, generator=gen)
    return torch.stack(
        [centre[0] + 0.3 * unit[..., 0], centre[1] + 0.5 * (unit[..., 1] - 0.5), 1.8 * unit[..., 2]], dim=-1
    )


def test_anchor_is_the_mean_position_and_its_bearing() -> None:
    anchor = points_anchor(_person(2))
    assert anchor[:, :2].flatten().tolist() == pytest.approx([3.15, -1.0] * 2, abs=0.02)
    assert anchor[:, 2].tolist() == pytest.approx([math.atan2(-1.0, 3.15)] * 2, abs=0.01)


def test_to_frame_and_from_frame_are_inverse_and_put_the_person_on_the_x_axis() -> None:
    points = _person(3)
    anchor = points_anchor(points)
    rel = to_frame(points, anchor)
    assert rel[..., :2].mean(dim=1).abs().max() < 1e-5  # centred
    assert torch.equal(rel[..., 2], points[..., 2])  # heights kept
    torch.testing.assert_close(from_frame(rel, anchor), points, atol=1e-5, rtol=0)


def test_anchor_comes_from_depth_then_lidar_then_the_default() -> None:
    depth, lidar, default = torch.ones(4, 3), 2 * torch.ones(4, 3), torch.tensor([5.0, 0.0, 0.0])
    present = torch.tensor([[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 0, 0]], dtype=torch.bool)
    anchor = choose_anchor(depth, lidar, default, present)
    assert anchor[:, 0].tolist() == [1.0, 2.0, 5.0, 1.0]


def test_depth_raster_keeps_the_nearest_point_and_knows_left_from_right() -> None:
    # Two points in one pixel (the nearer wins) on the person's left, one low on the right.
    points = torch.tensor([[[0.10, 0.5, 1.0], [0.30, 0.5, 1.0], [-0.2, -0.5, 0.3]]])
    image = depth_raster(points)
    height, width = DEPTH_RASTER_HW
    assert image.shape == (1, 2, height, width)
    assert int(image[0, 1].sum()) == 2
    rows, cols = image[0, 1].nonzero(as_tuple=True)
    left = cols.argmin()
    assert int(rows[left]) == int((height * DEPTH_RASTER_RES_M - 1.0) / DEPTH_RASTER_RES_M)
    assert float(image[0, 0, rows[left], cols[left]]) == pytest.approx(0.10 / 0.5)
    assert int(rows[1 - left]) > int(rows[left])  # the lower point is further down the image


def test_model_output_follows_the_person_around_the_base_origin() -> None:
    """Turning every input about the base z axis turns the output with it: the model sees the person
    in their own frame, wherever they stand."""
    model = MIDAS(tiny_config()).eval()
    inputs = {
        "depth": _person(2, 1, INPUT_SHAPES["depth"][0]),
        "lidar": _person(2, 2, INPUT_SHAPES["lidar"][0]),
        "csi": torch.zeros(2, *INPUT_SHAPES["csi"]),
    }
    present = torch.tensor([[1, 1, 0], [0, 1, 0]], dtype=torch.bool)
    angle = 0.6
    turn = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    )
    with torch.no_grad():
        pose = model(inputs, present).pose
        turned = model({m: x @ turn.T if m != "csi" else x for m, x in inputs.items()}, present).pose
    torch.testing.assert_close(turned, pose @ turn.T, atol=1e-4, rtol=0)


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def test_augmentation_moves_points_and_joints_together() -> None:
    gen = torch.Generator().manual_seed(0)
    points = _person(64)
    joints = _person(64, seed=3)[:, :17]
    settings = Augmentation(noise_m=0.0, occlusion_probability=0.0, scale_range=(1.0, 1.0))
    new_points, new_joints = augment_points(points, joints, settings, gen)
    anchor = points_anchor(points)
    torch.testing.assert_close(points_anchor(new_points)[:, :2], anchor[:, :2], atol=1e-4, rtol=0)
    # A rigid motion (turn, possibly mirrored): every joint keeps its distance to every point, up to
    # the left/right relabelling of mirrored samples.
    mirrored = torch.zeros(64, dtype=torch.bool)
    swap = list(range(17))
    for a, b in zip(LEFT_JOINTS, RIGHT_JOINTS, strict=True):
        swap[a], swap[b] = b, a
    before = _distances(joints, points)
    after = _distances(new_joints, new_points)
    for i in range(64):
        if not torch.allclose(after[i], before[i], atol=1e-4):
            mirrored[i] = True
            torch.testing.assert_close(after[i], before[i][swap], atol=1e-4, rtol=0)
    assert 10 < int(mirrored.sum()) < 54  # about half mirrored


def test_augmentation_scale_scales_bones() -> None:
    gen = torch.Generator().manual_seed(1)
    points, joints = _person(16), _person(16, seed=4)[:, :17]
    settings = Augmentation(
        noise_m=0.0, occlusion_probability=0.0, scale_range=(1.2, 1.2), mirror_probability=0.0
    )
    _, new_joints = augment_points(points, joints, settings, gen)
    for parent, child in BONES:
        ratio = (new_joints[:, child] - new_joints[:, parent]).norm(dim=-1) / (
            joints[:, child] - joints[:, parent]
        ).norm(dim=-1)
        torch.testing.assert_close(ratio, torch.full_like(ratio, 1.2), atol=1e-4, rtol=0)


def test_occlusion_removes_a_ball_of_points_and_keeps_the_count() -> None:
    gen = torch.Generator().manual_seed(2)
    points = _person(8)
    settings = Augmentation(
        max_turn_rad=0.0,
        mirror_probability=0.0,
        scale_range=(1.0, 1.0),
        noise_m=0.0,
        occlusion_probability=1.0,
    )
    new_points, _ = augment_points(points, points[:, :17], settings, gen)
    assert new_points.shape == points.shape
    for i in range(8):
        # every new point is one of the old ones, and some old ones are gone
        assert _distances(new_points[i], points[i]).min(dim=1).values.max() < 1e-5
        assert len(torch.unique(new_points[i], dim=0)) < len(torch.unique(points[i], dim=0))

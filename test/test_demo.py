"""The live demo: scoring from fusion records, a smoke run on a few seconds of bag with a random-weights
checkpoint, and Ctrl-C at any point exiting 0."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message

from midas_ros.demo import scenario
from midas_ros.demo.run import run_demo
from midas_ros.demo.scoring import score
from midas_ros.interfaces import FUSION_TOPIC, POSES_TOPIC
from midas_ros.model import MIDAS, save_checkpoint, tiny_config
from midas_ros.replay.scoring import match_to_ground_truth
from midas_ros.replay.skeleton_bag import UNKNOWN_SUBSET, read_skeletons
from midas_ros.ros.bag_io import BagRecorder, read_pose_arrays, resolved_topic
from midas_ros.ros.fusion_record import FusionRecord, fusion_record_msg
from midas_ros.ros.markers import pose_array

REPO_ROOT = Path(__file__).resolve().parents[1]
ACTIONS, FRAMES_PER_ACTION = (14, 26), 25  # 5 s of bag


def test_match_to_ground_truth_takes_the_nearest_within_50ms() -> None:
    gt = np.array([0, 100, 200, 300]) * 1_000_000
    pred = np.array([-40, 10, 140, 160, 260, 420]) * 1_000_000
    assert match_to_ground_truth(pred, gt).tolist() == [0, 0, 1, 2, 3, -1]


def _record(stamp_ns: int, subset: tuple[str, ...]) -> bytes:
    record = FusionRecord(
        stamp_ns=stamp_ns,
        subset=subset,
        weights={m: 1.0 / len(subset) for m in subset},
        sample_stamps_ns=dict.fromkeys(subset, stamp_ns),
        missing={m: "dead" for m in ("depth", "lidar", "csi") if m not in subset},
        wait_ms=1.0,
        inference_ms=2.0,
        stamp_to_publish_ms=3.0,
    )
    return serialize_message(fusion_record_msg(record, "midas_room"))


def test_skeletons_take_their_subset_from_the_fusion_records(tmp_path: Path) -> None:
    """Poses pair with the fusion record of their stamp, in order when two share one."""
    path = tmp_path / "skeletons"
    poses, records = resolved_topic(POSES_TOPIC), resolved_topic(FUSION_TOPIC)
    topics = {poses: "geometry_msgs/msg/PoseArray", records: "diagnostic_msgs/msg/DiagnosticArray"}
    stamps = [100, 200, 200, 300]
    with BagRecorder(path, topics) as recorder:
        for k, (stamp, subset) in enumerate(
            zip(stamps[:3], [("depth", "lidar", "csi"), ("lidar",), ("depth", "csi")], strict=True)
        ):
            recorder.write(records, k, _record(stamp, subset))  # the record may come before its poses
        for k, stamp in enumerate(stamps):
            joints = np.full((17, 3), float(k))
            recorder.write(
                poses, 10 + k, serialize_message(pose_array(joints, frame_id="r", stamp=Time(nanosec=stamp)))
            )
    got_stamps, joints, labels = read_skeletons(path)
    assert got_stamps.tolist() == stamps and joints.shape == (4, 17, 3)
    assert labels == ["depth+lidar+csi", "lidar", "depth+csi", UNKNOWN_SUBSET]

    result = score(got_stamps, joints, labels, np.array([100, 200]), np.zeros((2, 17, 3)))
    assert result.match.tolist() == [0, 1, 1, 1] and result.frames_predicted == 2
    assert set(result.by_subset) == {"depth+lidar+csi", "lidar", "depth+csi", UNKNOWN_SUBSET}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(MIDAS(tiny_config()), tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> scenario.DemoBagInfo:
    path = tmp_path_factory.mktemp("bag") / "demo_bag"
    return scenario.write_demo_bag(path, actions=ACTIONS, frames_per_action=FRAMES_PER_ACTION)


def _workdir_with(bag: scenario.DemoBagInfo, workdir: Path) -> Path:
    """A demo workdir holding a copy of the module's bag (the demo reuses a bag of the same scenario)."""
    shutil.copytree(bag.path, workdir / "demo_bag")
    return workdir


@pytest.mark.ros
@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path, checkpoint: Path, bag: scenario.DemoBagInfo) -> None:
    # Half speed: the shared test machine is slow, and sim time then leaves the adapters time to keep up.
    result = run_demo(
        _workdir_with(bag, tmp_path / "demo"),
        checkpoint=str(checkpoint),
        device="cpu",
        rate=0.5,
        actions=ACTIONS,
        frames_per_action=FRAMES_PER_ACTION,
    )
    assert result.frames == 50
    # The skeleton stream kept going through the dropouts: most frames got a skeleton.
    assert result.predicted >= 0.6 * result.frames
    assert "depth+lidar+csi" in result.mpjpe_by_subset
    assert UNKNOWN_SUBSET not in result.mpjpe_by_subset  # every skeleton's fusion record was recorded
    dropout_subsets = set(result.mpjpe_by_subset) - {"depth+lidar+csi"}
    assert dropout_subsets, "no frame was fused from a reduced subset"
    assert all(np.isfinite(err) and n > 0 for n, err in result.mpjpe_by_subset.values())
    assert result.plot_path is not None and result.plot_path.stat().st_size > 10_000

    stamps, joints, labels = read_skeletons(result.skeleton_bag)
    assert joints.shape[1:] == (17, 3) and len(labels) == len(stamps) == result.skeletons
    gt_stamps, _ = read_pose_arrays(result.bag_path, scenario.BAG_GROUND_TRUTH_TOPIC)
    assert (match_to_ground_truth(stamps, gt_stamps) >= 0).mean() > 0.9
    # Reduced subsets come from the bag's dropouts. A few may not (the very first set, formed before every
    # sensor was heard of; a sample later than max_wait_s on this loaded machine), but most must.
    reduced = consistent = 0
    for stamp, label in zip(stamps, labels, strict=True):
        t = (stamp - gt_stamps[0]) / 1e9
        missing = {"depth", "lidar", "csi"} - set(label.split("+"))
        if missing:
            reduced += 1
            near = (-0.1, -0.05, 0.0, 0.05)
            consistent += all(
                any(not scenario.is_alive(bag.schedule, m, t + dt) for dt in near) for m in missing
            )
    assert reduced >= 5 and consistent >= 0.75 * reduced


def _demo_process(workdir: Path, checkpoint: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "midas_ros.demo", "--workdir", str(workdir), "--checkpoint"]
    command += [str(checkpoint), "--device", "cpu", "--rate", "0.5", "--no-plot", "--actions"]
    command += [*map(str, ACTIONS), "--frames-per-action", str(FRAMES_PER_ACTION)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("when", ["starting", "playing"])
def test_ctrl_c_exits_zero(tmp_path: Path, checkpoint: Path, bag: scenario.DemoBagInfo, when: str) -> None:
    """Ctrl-C while starting up (imports, bag) or during the live run: a clean stop, exit status 0."""
    workdir = _workdir_with(bag, tmp_path / "demo")
    process = _demo_process(workdir, checkpoint)
    try:
        # The signal goes when the demo says it reached the state under test, never after a sleep.
        assert process.stdout is not None
        marker = "demo bag:" if when == "starting" else "playback started"
        for line in process.stdout:
            if line.startswith(marker):
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert "MPJPE" not in stdout  # stopped, not scored
    if when == "playing":  # the skeleton bag was closed properly
        assert (workdir / "skeleton_bag" / "metadata.yaml").exists()
    assert scenario.read_demo_bag_info(workdir / "demo_bag") == scenario.DemoBagInfo(
        **{**bag.__dict__, "path": workdir / "demo_bag"}
    )  # the bag is untouched


def test_score_puts_a_constant_pose_beside_the_model_on_the_same_frames() -> None:
    rng = np.random.default_rng(0)
    gt = rng.normal(0.0, 0.5, (4, 17, 3))
    gt_stamps = np.arange(4) * 100_000_000
    pred = gt + 0.01  # 10 mm off on every axis
    constant = gt.mean(axis=0)
    result = score(gt_stamps + 1_000_000, pred, ["depth", "depth", "lidar", "lidar"], gt_stamps, gt, constant)
    assert result.reference_mm is not None and set(result.reference_mm) == {"depth", "lidar", "all"}
    expected = np.linalg.norm(constant - gt[2:], axis=-1).mean() * 1000
    assert result.reference_mm["lidar"] == pytest.approx(expected)
    assert result.by_subset["lidar"][1] == pytest.approx(np.sqrt(3) * 10)
    assert "mean pose (mm)" in result.table(4, 4)

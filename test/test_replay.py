"""Replay evaluation (midas_ros.replay): a small bag of simulated real-size sensors, written in the test
as MCAP and as sqlite3, with a LiDAR dropout and a ground-truth PoseArray, replayed fast and live.

The bag uses a user's topic names (not the drivers' defaults) and carries /tf_static, so topic
selection and sensor poses from TF are exercised too. The model is a tiny untrained checkpoint with a
stored constant pose: the figures mean nothing, the plumbing is what is tested.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer

from midas_ros.demo.cloud_layouts import driver_cloud
from midas_ros.demo.scenario import FRAME_IDS, static_tf_cdr
from midas_ros.interfaces import FUSION_TOPIC, MARKERS_TOPIC, POSES_TOPIC, TF_STATIC_TOPIC
from midas_ros.replay import cli
from midas_ros.replay.bag import ReplayError
from midas_ros.rig import BASE_FRAME, Pose
from midas_ros.ros.bag_io import TYPESTORE, bag_topics, read_messages, resolved_topic
from midas_ros.ros.conversions import array_to_image, csi_to_pointcloud2, intrinsics_to_camera_info
from midas_ros.ros.markers import pose_array
from midas_ros.sim.drivers import D435, OS1_32, DriverSimulator
from midas_ros.sim.generate import sequence_csi
from midas_ros.sim.rigs import rig_by_name
from midas_ros.sync import NS_PER_S

RIG = rig_by_name("pool31")  # held out of training: a D435 at 848 x 480, 1.4 m up, 12 deg down
SUBJECT, ACTION = 40, 14
FRAMES = 24  # 2.4 s at 10 Hz
LIDAR_OUTAGE = range(9, 16)  # frames during which the LiDAR publishes nothing
START_NS = 1_700_000_000 * NS_PER_S
PERIOD_NS = NS_PER_S // 10
OFFSETS_NS = {"depth": 0, "lidar": 12_000_000, "csi": -18_000_000}  # sensors are not triggered together
TOPICS = {  # a user's own names
    "depth": "/cam/depth/image_rect_raw",
    "camera_info": "/cam/depth/camera_info",
    "lidar": "/os1/points",
    "csi": "/wifi/csi",
    "gt": "/mocap/skeleton",
    "gt_partial": "/mocap/partial",  # a PoseArray of 15 joints: the wrong shape
}
TYPES = {
    "depth": "sensor_msgs/msg/Image",
    "camera_info": "sensor_msgs/msg/CameraInfo",
    "lidar": "sensor_msgs/msg/PointCloud2",
    "csi": "sensor_msgs/msg/PointCloud2",
    "gt": "geometry_msgs/msg/PoseArray",
    "gt_partial": "geometry_msgs/msg/PoseArray",
}
TOPIC_ARGS = [
    "--depth-topic", TOPICS["depth"], "--camera-info-topic", TOPICS["camera_info"],
    "--lidar-topic", TOPICS["lidar"], "--csi-topic", TOPICS["csi"],
]  # fmt: skip


def _stamp(ns: int) -> Any:
    from builtin_interfaces.msg import Time

    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def _header(ns: int, frame_id: str) -> Any:
    from std_msgs.msg import Header

    return Header(stamp=_stamp(ns), frame_id=frame_id)


def write_bag(
    path: Path, storage: StoragePlugin, sim: DriverSimulator, csi: tuple[np.ndarray, np.ndarray]
) -> Path:
    """The test bag: depth + camera_info, an Ouster scan, CSI, ground truth (+ a 15-joint PoseArray)
    and /tf_static, log time = header stamp, as a recorder on the sensor host writes them."""
    items: list[tuple[int, str, bytes]] = [(START_NS, TF_STATIC_TOPIC, static_tf_cdr(RIG, START_NS))]
    for f in range(FRAMES):
        frame_ns = START_NS + f * PERIOD_NS
        gt = pose_array(sim.joints[f], frame_id=BASE_FRAME, stamp=_stamp(frame_ns))
        items.append((frame_ns, TOPICS["gt"], serialize_message(gt)))
        partial = pose_array(sim.joints[f], frame_id=BASE_FRAME, stamp=_stamp(frame_ns))
        partial.poses = partial.poses[:15]
        items.append((frame_ns, TOPICS["gt_partial"], serialize_message(partial)))
        ns = frame_ns + OFFSETS_NS["depth"]
        info = intrinsics_to_camera_info(D435.intrinsics, _header(ns, FRAME_IDS["depth"]))
        items.append((ns, TOPICS["camera_info"], serialize_message(info)))
        image = array_to_image(sim.depth_frame(f), _header(ns, FRAME_IDS["depth"]))
        items.append((ns, TOPICS["depth"], serialize_message(image)))
        if f not in LIDAR_OUTAGE:
            ns = frame_ns + OFFSETS_NS["lidar"]
            scan = driver_cloud(sim.ouster_scan(f, OS1_32), "ouster", header=_header(ns, FRAME_IDS["lidar"]))
            items.append((ns, TOPICS["lidar"], serialize_message(scan)))
        ns = frame_ns + OFFSETS_NS["csi"]
        cloud = csi_to_pointcloud2(csi[0][f], csi[1][f], _header(ns, FRAME_IDS["csi"]))
        items.append((ns, TOPICS["csi"], serialize_message(cloud)))
    writer = Writer(path, version=9, storage_plugin=storage)
    writer.open()
    connections = {
        topic: writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        for topic, msgtype in [
            *((TOPICS[k], TYPES[k]) for k in TOPICS),
            (TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage"),
        ]
    }
    for log_ns, topic, rawdata in sorted(items, key=lambda item: item[0]):
        writer.write(connections[topic], max(log_ns, START_NS), rawdata)
    writer.close()
    return path


@pytest.fixture(scope="module")
def sim() -> DriverSimulator:
    return DriverSimulator(SUBJECT, ACTION, FRAMES, 0, RIG)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory, sim: DriverSimulator) -> dict[str, Path]:
    """The same content as MCAP and as sqlite3."""
    folder = tmp_path_factory.mktemp("bags")
    csi = sequence_csi(SUBJECT, ACTION, FRAMES, 0, RIG)
    return {
        "mcap": write_bag(folder / "run_mcap", StoragePlugin.MCAP, sim, csi),
        "sqlite3": write_bag(folder / "run_sqlite", StoragePlugin.SQLITE3, sim, csi),
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, sim: DriverSimulator) -> Path:
    """A tiny untrained model with a constant pose stored, as the training stages store it."""
    import torch

    from midas_ros.evaluate.references import reference_metadata
    from midas_ros.model import MIDAS, save_checkpoint, tiny_config

    torch.manual_seed(0)
    return save_checkpoint(
        MIDAS(tiny_config()), tmp_path_factory.mktemp("ckpt") / "tiny", reference_metadata(sim.joints)
    )


def replay(args: list[str]) -> list[cli.BagResult]:
    return cli.run(cli.build_arg_parser().parse_args([*args, "--no-progress"]))


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def fast_run(
    bags: dict[str, Path], checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> tuple[Path, cli.BagResult]:
    out = tmp_path_factory.mktemp("fast")
    args = [str(bags["mcap"]), "--out", str(out), "--checkpoint", str(checkpoint), "--device", "cpu"]
    (result,) = replay([*args, *TOPIC_ARGS, "--gt-topic", TOPICS["gt"]])
    return out, result


# -- fast mode ----------------------------------------------------------------------------------------------


def test_fast_mode_writes_the_skeleton_stream_as_the_fusion_node_publishes_it(
    fast_run: tuple[Path, cli.BagResult],
) -> None:
    out, result = fast_run
    skeleton_bag = out / "run_mcap" / "skeletons"
    assert result.files["skeletons"] == skeleton_bag
    topics = bag_topics(skeleton_bag)
    assert topics == {
        resolved_topic(POSES_TOPIC): "geometry_msgs/msg/PoseArray",
        resolved_topic(MARKERS_TOPIC): "visualization_msgs/msg/MarkerArray",
        resolved_topic(FUSION_TOPIC): "diagnostic_msgs/msg/DiagnosticArray",
    }
    poses = [m.deserialize() for m in read_messages(skeleton_bag, [resolved_topic(POSES_TOPIC)])]
    assert len(poses) == result.stats.skeletons >= FRAMES - 3  # one skeleton per frame, whatever is alive
    assert all(len(p.poses) == 17 and p.header.frame_id == BASE_FRAME for p in poses)
    # Every sensor frame became a sample (the person was found in each), none was rejected.
    accounting = result.stats.accounting
    assert accounting["depth"]["processed"] == FRAMES and accounting["csi"]["processed"] == FRAMES
    assert accounting["lidar"]["processed"] == FRAMES - len(LIDAR_OUTAGE)
    assert not result.stats.rejections
    # Poses came from the bag's /tf_static: the rig's camera_link and LiDAR poses.
    assert {m: p.source for m, p in result.plan.poses.items()} == {
        "depth": "/tf_static",
        "lidar": "/tf_static",
    }
    np.testing.assert_allclose(result.plan.poses["depth"].pose.as_list(), RIG.depth_pose.as_list(), atol=1e-6)
    np.testing.assert_allclose(result.plan.poses["lidar"].pose.as_list(), RIG.lidar_pose.as_list(), atol=1e-6)
    assert result.stats.realtime_factor > 0 and result.stats.skeletons_per_s > 0


def test_fast_mode_table_has_a_row_per_live_subset_and_the_dropout_shows(
    fast_run: tuple[Path, cli.BagResult],
) -> None:
    out, result = fast_run
    rows = read_table(out / "table.csv")
    assert rows == read_table(out / "run_mcap" / "table.csv")  # one bag: the merged table is the bag's
    subsets = {row["subset"]: row for row in rows}
    assert {"depth+lidar+csi", "depth+csi", "all"} <= set(subsets)
    assert sum(int(r["frames"]) for r in rows if r["subset"] != "all") == int(subsets["all"]["frames"])
    for row in rows:
        for key in (
            "mpjpe_mm",
            "pa_mpjpe_mm",
            "constant_mpjpe_mm",
            "constant_pa_mpjpe_mm",
            "placement_mpjpe_mm",
        ):
            assert np.isfinite(float(row[key])) and float(row[key]) > 0, (row, key)
    # The skeletons fused without the LiDAR are those of its outage (from the fusion records).
    score = result.score
    frame = np.round((score.stamps_ns - START_NS) / PERIOD_NS).astype(int)
    without_lidar = {int(f) for f, label in zip(frame, score.labels, strict=True) if "lidar" not in label}
    # The first frame after it too: a dead sensor is not waited for, so that set formed before the
    # returning LiDAR's sample (12 ms after the depth image) arrived.
    assert without_lidar and without_lidar <= {*LIDAR_OUTAGE, LIDAR_OUTAGE.stop}
    assert len(without_lidar) >= len(LIDAR_OUTAGE) - 1
    records = [r for r in score.records if r is not None and "lidar" not in r.subset]
    assert {r.missing["lidar"] for r in records} <= {"out_of_tolerance", "dead"}
    md = (out / "table.md").read_text()
    assert "| depth+csi |" in md and "PA-MPJPE" in md and "constant pose" in md
    assert (out / "run_mcap" / "timeline.png").stat().st_size > 20_000
    frames_csv = read_table(out / "run_mcap" / "frames.csv")
    assert len(frames_csv) == len(score.stamps_ns) and frames_csv[0]["subset"]


def test_sqlite3_bag_npz_ground_truth_with_a_transform_and_jobs_give_the_same_scores(
    bags: dict[str, Path],
    checkpoint: Path,
    fast_run: tuple[Path, cli.BagResult],
    sim: DriverSimulator,
    tmp_path: Path,
) -> None:
    """Both bags in two worker processes, scored against an .npz in another frame with --gt-pose:
    fast mode is deterministic, so every figure equals the MCAP + PoseArray run's."""
    gt_frame = Pose(x=0.5, y=-0.2, z=0.1, yaw=0.3)  # the ground truth's frame in the base frame
    npz = tmp_path / "gt.npz"
    stamps = START_NS + np.arange(FRAMES, dtype=np.int64) * PERIOD_NS
    np.savez(npz, stamps=stamps, joints=gt_frame.from_base(sim.joints))
    out = tmp_path / "jobs"
    results = replay(
        [str(bags["mcap"]), str(bags["sqlite3"]), "--out", str(out), "--checkpoint", str(checkpoint),
         "--device", "cpu", "--jobs", "2", *TOPIC_ARGS, "--gt-npz", str(npz), str(npz),
         "--gt-pose", *map(str, gt_frame.as_list())]
    )  # fmt: skip
    assert [r.plan.name for r in results] == ["run_mcap", "run_sqlite"]
    rows = read_table(out / "table.csv")
    assert {row["bag"] for row in rows} == {"run_mcap", "run_sqlite", "all bags"}
    reference = {row["subset"]: row for row in read_table(fast_run[0] / "table.csv")}
    for row in rows:
        expected = reference[row["subset"]]
        assert int(row["frames"]) == int(expected["frames"]) * (2 if row["bag"] == "all bags" else 1)
        for key in ("mpjpe_mm", "pa_mpjpe_mm", "constant_mpjpe_mm", "placement_mpjpe_mm"):
            assert float(row[key]) == pytest.approx(float(expected[key]), abs=1e-3), (row, key)


def _joints_of(skeleton_bag: Path) -> np.ndarray:
    poses = [m.deserialize() for m in read_messages(skeleton_bag, [resolved_topic(POSES_TOPIC)])]
    return np.array([[(p.position.x, p.position.y, p.position.z) for p in msg.poses] for msg in poses])


def test_preprocessing_in_processes_of_their_own_gives_the_same_skeletons(
    bags: dict[str, Path], checkpoint: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    """Depth and LiDAR preprocessed in two spawned processes (what one bag on a multi-core machine
    gets), then everything in the replaying process: the same skeleton stream, stamp for stamp."""
    from midas_ros.replay.fast import run_fast

    args = [str(bags["mcap"]), "--out", str(tmp_path), "--checkpoint", str(checkpoint), "--device", "cpu"]
    (plan,) = cli.prepare_plans(cli.build_arg_parser().parse_args([*args, *TOPIC_ARGS]))
    runs = {w: run_fast(plan, tmp_path / f"workers_{w}", progress=False, workers=w) for w in (True, False)}
    assert runs[True].accounting == runs[False].accounting and runs[True].skeletons == runs[False].skeletons
    stamps = {
        w: [
            m.deserialize().header.stamp
            for m in read_messages(tmp_path / f"workers_{w}", [resolved_topic(POSES_TOPIC)])
        ]
        for w in runs
    }
    assert stamps[True] == stamps[False] and len(stamps[True]) == runs[True].skeletons > 0
    np.testing.assert_array_equal(
        _joints_of(tmp_path / "workers_True"), _joints_of(tmp_path / "workers_False")
    )


def test_a_preprocessing_process_error_reaches_the_replay(
    bags: dict[str, Path], checkpoint: Path, tmp_path: Path
) -> None:
    """The bag goes missing after planning: the depth process's error is raised in the replaying
    process (not a hang, not a silent empty stream)."""
    import shutil

    from midas_ros.replay.arrivals import merged_arrivals

    bag = tmp_path / "gone"
    shutil.copytree(bags["mcap"], bag)
    args = [str(bag), "--out", str(tmp_path / "out"), "--checkpoint", str(checkpoint), "--device", "cpu"]
    (plan,) = cli.prepare_plans(cli.build_arg_parser().parse_args([*args, *TOPIC_ARGS]))
    shutil.rmtree(bag)
    with pytest.raises(Exception, match="gone"), merged_arrivals(plan, in_process=False) as arrivals:
        next(iter(arrivals))


# -- errors -------------------------------------------------------------------------------------------------


def _fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*args, "--no-progress"])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_wrong_topic_is_named_with_the_bags_topics(
    bags: dict[str, Path], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [str(bags["sqlite3"]), "--out", str(tmp_path), "--checkpoint", str(checkpoint), *TOPIC_ARGS]
    err = _fails([*base, "--lidar-topic", "/velodyne_points"], capsys)
    assert "lidar topic '/velodyne_points' is not in the bag" in err
    assert TOPICS["lidar"] in err and "sensor_msgs/msg/PointCloud2" in err and TOPICS["depth"] in err
    err = _fails([*base, "--depth-topic", TOPICS["lidar"]], capsys)
    assert "is a sensor_msgs/msg/PointCloud2, expected a sensor_msgs/msg/Image" in err
    err = _fails([*base, "--csi-topic", TOPICS["lidar"]], capsys)
    assert "does not hold the CSI layout" in err and "'x'" in err
    # The drivers' default names (absent here but CSI's) and CSI left out: no sensor at all.
    err = _fails(
        [
            str(bags["sqlite3"]),
            "--out",
            str(tmp_path),
            "--checkpoint",
            str(checkpoint),
            "--csi-topic",
            "none",
        ],
        capsys,
    )
    assert "none of the sensor topics" in err and TOPICS["depth"] in err.split("The bag has:")[1]


def test_ground_truth_of_the_wrong_shape_is_refused(
    bags: dict[str, Path], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [str(bags["mcap"]), "--out", str(tmp_path), "--checkpoint", str(checkpoint), *TOPIC_ARGS]
    err = _fails([*base, "--gt-topic", TOPICS["gt_partial"]], capsys)
    assert "holds 15 poses; expected 17" in err
    bad = tmp_path / "bad.npz"
    np.savez(bad, stamps=np.arange(5, dtype=np.int64), joints=np.zeros((5, 15, 3)))
    err = _fails([*base, "--gt-npz", str(bad)], capsys)
    assert "joints (N, 17, 3)" in err and "(5, 15, 3)" in err
    np.savez(bad, time=np.arange(5.0), skeleton=np.zeros((5, 17, 3)))
    err = _fails([*base, "--gt-npz", str(bad)], capsys)
    assert "needs arrays 'stamps'" in err and "time (5,)" in err and "skeleton (5, 17, 3)" in err
    np.savez(bad, stamps=np.arange(5.0), joints=np.zeros((5, 17, 3)))
    assert "integer nanoseconds" in _fails([*base, "--gt-npz", str(bad)], capsys)
    with pytest.raises(ReplayError, match="one file per bag"):
        replay([str(bags["mcap"]), str(bags["sqlite3"]), "--gt-npz", str(bad)])


def test_static_tf_lookup_follows_chains_either_way_round() -> None:
    from midas_ros.replay.tf_static import _matrix, lookup

    mast = Pose(z=1.2, yaw=0.4)  # base -> mast
    sensor = Pose(x=0.1, pitch=0.3)  # mast -> sensor
    expected = mast.compose(sensor)
    edges = {
        "mast": ("midas_base", _matrix(mast.translation, mast.quaternion_xyzw())),
        "sensor": ("mast", _matrix(sensor.translation, sensor.quaternion_xyzw())),
    }
    translation, quaternion = lookup(edges, BASE_FRAME, "/sensor")
    np.testing.assert_allclose(
        Pose.from_transform(translation, quaternion).as_list(), expected.as_list(), atol=1e-9
    )
    # The same tree rooted at the sensor (base given as a child of the mast): the inverse is followed.
    inverted = {
        "mast": ("sensor", np.linalg.inv(edges["sensor"][1])),
        "midas_base": ("mast", np.linalg.inv(edges["mast"][1])),
    }
    translation, quaternion = lookup(inverted, BASE_FRAME, "sensor")
    np.testing.assert_allclose(
        Pose.from_transform(translation, quaternion).as_list(), expected.as_list(), atol=1e-9
    )
    assert lookup(edges, BASE_FRAME, "elsewhere") is None


def test_set_overrides_parse_yaml_values_and_win_over_the_config() -> None:
    from midas_ros.replay.settings import node_parameters, overrides_from
    from midas_ros.ros.fusion import FusionSettings

    overrides = overrides_from(
        [
            "fusion_node.max_latency_s=0.6",
            "fusion_node.lidar.timeout_s=2",
            "lidar_adapter.lidar_pose=[0, 0, 2, 0, 0.1, 0]",
        ]
    )
    params = node_parameters(None, overrides)
    fusion = FusionSettings.from_parameters(params["fusion_node"])
    assert fusion.max_latency_s == 0.6 and fusion.configs["lidar"].timeout_s == 2.0
    assert fusion.configs["depth"].timeout_s == 0.5  # config/midas.yaml's
    assert params["lidar_adapter"]["lidar_pose"] == [0, 0, 2, 0, 0.1, 0]
    assert params["depth_adapter"]["search_x_max"] == 5.0
    with pytest.raises(ValueError, match=r"NODE\.PARAM=VALUE"):
        overrides_from(["max_latency_s=0.6"])


def test_fast_mode_reads_the_nodes_own_parameter_declarations() -> None:
    """The replay's settings come from the specs the nodes declare (ros/fusion.py, ros/samples.py), and
    config/*.yaml holds their defaults: a parameter missing from a config gets the node's default."""
    from midas_ros.replay.settings import node_parameters
    from midas_ros.ros.fusion import FUSION_PARAMETERS, FusionSettings
    from midas_ros.ros.parameters import resolve
    from midas_ros.ros.samples import DEPTH_PARAMETERS, LIDAR_PARAMETERS, POSE_PARAMETERS

    params = node_parameters(None)
    declared = {
        "fusion_node": FUSION_PARAMETERS,
        "depth_adapter": (*DEPTH_PARAMETERS, POSE_PARAMETERS["depth"]),
        "lidar_adapter": (*LIDAR_PARAMETERS, POSE_PARAMETERS["lidar"]),
    }
    for node, specs in declared.items():
        assert resolve(specs, params[node]) == resolve(specs, {}), node
    assert FusionSettings.from_parameters(params["fusion_node"]) == FusionSettings.from_parameters({})
    with pytest.raises(ValueError, match="search_x_max must be a number"):
        resolve(LIDAR_PARAMETERS, {"search_x_max": "far"})


def test_help_answers() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_arg_parser().parse_args(["--help"])
    assert exit_info.value.code == 0


# -- live mode ----------------------------------------------------------------------------------------------

AGREEMENT_SET = ["--set", "fusion_node.max_latency_s=0.3"]  # samples may lag this much in live mode


@pytest.mark.ros
@pytest.mark.slow
def test_live_mode_agrees_with_fast_mode_on_the_frames_both_produced(
    bags: dict[str, Path], checkpoint: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    """The real node graph at half speed, then fast mode with the same parameters: on every skeleton
    both made from the same live subset, the same joints (so MPJPE within 2%)."""
    args = [
        str(bags["mcap"]),
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cpu",
        *TOPIC_ARGS,
        *AGREEMENT_SET,
    ]
    args += ["--gt-topic", TOPICS["gt"]]
    (live,) = replay([*args, "--mode", "live", "--rate", "0.5", "--out", str(tmp_path / "live")])
    (fast,) = replay([*args, "--out", str(tmp_path / "fast")])

    assert live.stats.mode == "live" and live.stats.skeletons > 0
    assert set(bag_topics(live.files["skeletons"])) == set(bag_topics(fast.files["skeletons"]))
    assert (tmp_path / "live" / "table.csv").exists() and (
        tmp_path / "live" / "run_mcap" / "timeline.png"
    ).exists()
    assert live.stats.accounting["lidar"]["processed"] >= FRAMES - len(LIDAR_OUTAGE) - 2
    # Live made most of fast mode's skeletons, and the dropout shows there too.
    live_by_stamp = {int(s): k for k, s in enumerate(live.score.stamps_ns)}
    common = [
        (k, live_by_stamp[int(s)])
        for k, s in enumerate(fast.score.stamps_ns)
        if int(s) in live_by_stamp and live.score.labels[live_by_stamp[int(s)]] == fast.score.labels[k]
    ]
    assert len(common) >= 0.6 * len(fast.score.stamps_ns), (live.score.labels, fast.score.labels)
    assert any("lidar" not in label for label in live.score.labels)
    fast_rows, live_rows = (np.array([c[i] for c in common]) for i in (0, 1))
    np.testing.assert_allclose(live.score.joints[live_rows], fast.score.joints[fast_rows], atol=2e-3)
    fast_mpjpe = np.nanmean(fast.score.errors["mpjpe"][fast_rows])
    live_mpjpe = np.nanmean(live.score.errors["mpjpe"][live_rows])
    assert abs(live_mpjpe - fast_mpjpe) <= 0.02 * fast_mpjpe

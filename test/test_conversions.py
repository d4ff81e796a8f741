"""numpy <-> sensor_msgs conversions on real driver layouts (midas_ros/demo/cloud_layouts.py)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from midas_ros.demo.cloud_layouts import DRIVER_LAYOUTS, SCAN_PERIOD_S, driver_cloud, driver_points
from midas_ros.interfaces import DEPTH_NUM_POINTS, INPUT_SHAPES
from midas_ros.rig import CameraIntrinsics
from midas_ros.ros.conversions import (
    ConversionError,
    array_to_image,
    camera_info_to_intrinsics,
    csi_to_pointcloud2,
    image_to_array,
    intrinsics_to_camera_info,
    msg_to_sample,
    pointcloud2_to_csi,
    pointcloud2_to_xyz,
    sample_to_msg,
    xyz_to_pointcloud2,
)

F32, F64, U8, U16, U32 = (
    PointField.FLOAT32,
    PointField.FLOAT64,
    PointField.UINT8,
    PointField.UINT16,
    PointField.UINT32,
)


def header(sec: int = 12, nanosec: int = 345, frame: str = "cam") -> Header:
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def ouster_cloud(big: bool = False):
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-5, 5, (64, 1024, 3)).astype(np.float32)
    no_return = rng.random((64, 1024)) < 0.2
    xyz[no_return] = 0.0
    return driver_cloud(xyz, "ouster", big_endian=big), xyz.reshape(-1, 3)[~no_return.reshape(-1)]


def velodyne_cloud(n: int = 500):
    xyz = np.random.default_rng(1).normal(0, 3, (n, 3)).astype(np.float32)
    return driver_cloud(xyz, "velodyne"), xyz


def livox_cloud(n: int = 300):
    # is_dense true yet with NaNs, as the Livox driver publishes.
    xyz = np.random.default_rng(2).uniform(1, 9, (n, 3)).astype(np.float32)
    xyz[::10, 1] = np.nan
    return driver_cloud(xyz, "livox", is_dense=True), xyz[np.isfinite(xyz).all(axis=1)]


# -- Image ------------------------------------------------------------------------------------------------


def test_image_16uc1_roundtrip_keeps_header():
    depth = np.random.default_rng(0).integers(0, 8000, (48, 64), dtype=np.uint16)
    msg = array_to_image(depth, header(5, 6, "depth_optical"))
    assert (msg.encoding, msg.step, msg.height, msg.width) == ("16UC1", 128, 48, 64)
    assert msg.header.stamp.sec == 5 and msg.header.stamp.nanosec == 6
    assert msg.header.frame_id == "depth_optical"
    out = image_to_array(msg)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, depth)


def test_image_32fc1_big_endian_and_padded_rows():
    depth = np.linspace(0.5, 4.0, 6 * 5, dtype=np.float32).reshape(6, 5)
    depth[2, 3] = np.nan
    rows = depth.astype(">f4").view(np.uint8).reshape(6, 20)
    padded = np.concatenate([rows, np.zeros((6, 12), np.uint8)], axis=1)  # step 32 > 20
    msg = Image(height=6, width=5, encoding="32FC1", is_bigendian=True, step=32, data=padded.tobytes())
    out = image_to_array(msg)
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, depth)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"encoding": "rgb8", "height": 2, "width": 2, "step": 6, "data": bytes(12)}, "bad_encoding"),
        ({"encoding": "16UC1", "height": 2, "width": 4, "step": 6, "data": bytes(16)}, "bad_step"),
        ({"encoding": "16UC1", "height": 4, "width": 4, "step": 8, "data": bytes(16)}, "bad_size"),
        ({"encoding": "32FC1", "height": 0, "width": 0, "step": 0, "data": b""}, "empty"),
    ],
)
def test_image_rejections(kwargs, reason):
    with pytest.raises(ConversionError) as err:
        image_to_array(Image(**kwargs))
    assert err.value.reason == reason


# -- CameraInfo -------------------------------------------------------------------------------------------

D435 = CameraIntrinsics(848, 480, 421.0, 421.5, 423.5, 239.5)


def test_camera_info_roundtrip_keeps_header():
    msg = intrinsics_to_camera_info(D435, header(7, 8, "camera_depth_optical_frame"))
    assert (msg.width, msg.height, msg.header.frame_id, msg.header.stamp.sec) == (
        848,
        480,
        "camera_depth_optical_frame",
        7,
    )
    assert list(msg.k) == [421.0, 0.0, 423.5, 0.0, 421.5, 239.5, 0.0, 0.0, 1.0]
    assert list(msg.p[:3]) == [421.0, 0.0, 423.5] and list(msg.d) == [0.0] * 5
    assert camera_info_to_intrinsics(msg) == D435
    assert camera_info_to_intrinsics(msg) == CameraIntrinsics.from_k(848, 480, msg.k)


def test_camera_info_binning_and_roi():
    """As image_geometry: a 2 x 2 binned image has half the size and focal lengths; an ROI's image
    starts at its offset."""
    binned = intrinsics_to_camera_info(D435)
    binned.binning_x = binned.binning_y = 2
    assert camera_info_to_intrinsics(binned) == CameraIntrinsics(424, 240, 210.5, 210.75, 211.75, 119.75)
    roi = intrinsics_to_camera_info(D435)
    roi.roi.x_offset, roi.roi.y_offset, roi.roi.width, roi.roi.height = 100, 40, 640, 400
    assert camera_info_to_intrinsics(roi) == CameraIntrinsics(640, 400, 421.0, 421.5, 323.5, 199.5)


def test_camera_info_rejections():
    with pytest.raises(ConversionError, match="uncalibrated") as err:
        camera_info_to_intrinsics(CameraInfo(width=848, height=480))  # K all zero
    assert err.value.reason == "bad_camera_info"
    no_size = intrinsics_to_camera_info(D435)
    no_size.width = 0
    with pytest.raises(ConversionError, match="image size") as err:
        camera_info_to_intrinsics(no_size)
    assert err.value.reason == "bad_camera_info"


# -- PointCloud2 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("big", [False, True])
def test_ouster_organised_padded(big):
    msg, expected = ouster_cloud(big=big)
    assert (msg.height, msg.width, msg.point_step) == (64, 1024, 48)
    xyz = pointcloud2_to_xyz(msg)
    assert xyz.dtype == np.float32 and xyz.dtype.isnative
    np.testing.assert_array_equal(xyz, expected)  # zeros (no return) dropped, order kept
    assert pointcloud2_to_xyz(msg, drop_invalid=False).shape == (64 * 1024, 3)


def test_velodyne_and_livox():
    msg, expected = velodyne_cloud()
    np.testing.assert_array_equal(pointcloud2_to_xyz(msg), expected)
    msg, expected = livox_cloud()
    assert msg.point_step == 26 and msg.is_dense
    xyz = pointcloud2_to_xyz(msg)
    np.testing.assert_array_equal(xyz, expected)  # NaNs dropped despite is_dense
    assert len(xyz) == 270


def test_row_step_padding_is_skipped():
    xyz = np.stack([np.arange(12).reshape(3, 4) + 10 * i + 1 for i in range(3)], axis=-1)
    msg = driver_cloud(xyz, "velodyne", row_pad=7)
    assert msg.row_step == 4 * 22 + 7
    out = pointcloud2_to_xyz(msg)
    np.testing.assert_array_equal(out[:, 0], np.arange(12) + 1)
    np.testing.assert_array_equal(out[:, 2], np.arange(12) + 21)


@pytest.mark.parametrize(
    ("layout", "point_step", "fields"),
    [
        (
            "ouster",
            48,
            [
                ("x", 0, F32),
                ("y", 4, F32),
                ("z", 8, F32),
                ("intensity", 16, F32),
                ("t", 20, U32),
                ("reflectivity", 24, U16),
                ("ring", 26, U16),
                ("ambient", 28, U16),
                ("range", 32, U32),
            ],
        ),
        (
            "velodyne",
            22,
            [
                ("x", 0, F32),
                ("y", 4, F32),
                ("z", 8, F32),
                ("intensity", 12, F32),
                ("ring", 16, U16),
                ("time", 18, F32),
            ],
        ),
        (
            "livox",
            26,
            [
                ("x", 0, F32),
                ("y", 4, F32),
                ("z", 8, F32),
                ("intensity", 12, F32),
                ("tag", 16, U8),
                ("line", 17, U8),
                ("timestamp", 18, F64),
            ],
        ),
    ],
)
def test_driver_layouts_are_the_drivers(layout, point_step, fields):
    xyz = np.random.default_rng(6).normal([4.0, 0.0, 0.0], 1.0, (8, 16, 3)).astype(np.float32)
    msg = driver_cloud(xyz, layout, header=header(100, 0, "lidar"))
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (8, 16, point_step, 16 * point_step)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [(*f, 1) for f in fields]
    assert not msg.is_bigendian and msg.is_dense
    big = driver_cloud(xyz, layout, big_endian=True)
    assert big.is_bigendian and big.data != msg.data
    np.testing.assert_array_equal(pointcloud2_to_xyz(big), xyz.reshape(-1, 3))


def test_driver_points_plausible_values():
    rng = np.random.default_rng(7)
    xyz = rng.normal([3.0, 0.0, 0.0], [2.0, 3.0, 0.5], (400, 3))
    for layout, spec in DRIVER_LAYOUTS.items():
        points = driver_points(xyz, layout, stamp_ns=5 * 10**9)
        ring = points["line" if layout == "livox" else "ring"]
        assert ring.min() >= 0 and ring.max() == spec.rings - 1
        assert np.all(points["intensity"] > 0)
    ouster = driver_points(xyz, "ouster")
    assert np.all(ouster["t"] <= SCAN_PERIOD_S * 1e9)
    np.testing.assert_allclose(ouster["range"], np.linalg.norm(xyz, axis=1) * 1000, atol=0.6)
    # Ring 0 is the top beam on an Ouster, the bottom beam on a Velodyne.
    up, down = np.array([[5.0, 0.0, 2.0]]), np.array([[5.0, 0.0, -2.0]])
    assert driver_points(up, "ouster")["ring"][0] == 0 and driver_points(down, "velodyne")["ring"][0] == 0
    velodyne = driver_points(xyz, "velodyne")
    assert np.all((velodyne["time"] >= 0) & (velodyne["time"] <= SCAN_PERIOD_S))
    livox = driver_points(xyz, "livox", stamp_ns=5 * 10**9)
    assert np.all(np.diff(livox["timestamp"]) >= 0) and livox["timestamp"][0] == 5e9
    # Organised: ring = row, t = the column's time.
    organised = driver_points(np.ones((4, 10, 3)), "ouster")
    assert organised["ring"][:, 0].tolist() == [0, 1, 2, 3]
    assert organised["t"][0, 5] == round(0.5 * SCAN_PERIOD_S * 1e9)


def test_driver_no_returns():
    xyz = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [np.nan, 1.0, 1.0]])
    ouster = driver_points(xyz, "ouster")
    assert bytes(ouster[1:].tobytes()) == bytes(2 * 48)  # all zeros, as ouster-ros publishes
    livox = driver_points(xyz, "livox")
    assert np.isnan(livox["x"][2]) and livox["intensity"][2] == 0
    assert not driver_cloud(xyz, "livox").is_dense and driver_cloud(xyz, "livox", is_dense=True).is_dense


def test_xyz_roundtrip():
    pts = np.random.default_rng(3).normal(size=(512, 3)).astype(np.float32)
    msg = xyz_to_pointcloud2(pts, header(1, 2, "lidar"))
    assert (msg.width, msg.point_step, msg.row_step, msg.is_dense) == (512, 12, 6144, True)
    assert msg.header.frame_id == "lidar"
    np.testing.assert_array_equal(pointcloud2_to_xyz(msg), pts)


def test_cloud_rejections():
    msg, _ = velodyne_cloud(10)
    no_z = PointCloud2(
        height=1,
        width=10,
        point_step=msg.point_step,
        row_step=msg.row_step,
        data=msg.data,
        fields=msg.fields[:2],
    )
    with pytest.raises(ConversionError) as err:
        pointcloud2_to_xyz(no_z)
    assert err.value.reason == "missing_fields"
    msg.fields[0].datatype = U16
    with pytest.raises(ConversionError) as err:
        pointcloud2_to_xyz(msg)
    assert err.value.reason == "bad_field_type"
    msg, _ = velodyne_cloud(10)
    msg.data = msg.data[:-5]
    with pytest.raises(ConversionError) as err:
        pointcloud2_to_xyz(msg)
    assert err.value.reason == "bad_size"
    msg, _ = velodyne_cloud(10)
    msg.row_step = 5
    with pytest.raises(ConversionError) as err:
        pointcloud2_to_xyz(msg)
    assert err.value.reason == "bad_step"
    with pytest.raises(ConversionError) as err:
        pointcloud2_to_xyz(PointCloud2())
    assert err.value.reason == "empty"


# -- CSI layout -------------------------------------------------------------------------------------------


def test_csi_layout_roundtrip_and_byte_layout():
    rng = np.random.default_rng(4)
    amp = rng.random((3, 114, 10), dtype=np.float32)
    pha = rng.uniform(-np.pi, np.pi, (3, 114, 10)).astype(np.float32)
    msg = csi_to_pointcloud2(amp, pha, header(9, 9, "wifi_rx"))
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (3, 114, 80, 80 * 114)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("amplitude", 0, F32, 10),
        ("phase", 40, F32, 10),
    ]
    # Row-major by antenna then subcarrier: point (a=1, s=2) starts at (1 * 114 + 2) * 80.
    raw = np.frombuffer(bytes(msg.data), "<f4")
    start = (1 * 114 + 2) * 20
    np.testing.assert_array_equal(raw[start : start + 10], amp[1, 2])
    np.testing.assert_array_equal(raw[start + 10 : start + 20], pha[1, 2])
    a2, p2 = pointcloud2_to_csi(msg)
    np.testing.assert_array_equal(a2, amp)
    np.testing.assert_array_equal(p2, pha)


def test_csi_rejections():
    with pytest.raises(ConversionError) as err:
        csi_to_pointcloud2(np.zeros((3, 114, 10)), np.zeros((3, 114, 9)))
    assert err.value.reason == "bad_shape"
    msg = csi_to_pointcloud2(np.ones((3, 4, 2)), np.ones((3, 4, 2)))
    msg.fields[1].count = 3
    with pytest.raises(ConversionError) as err:
        pointcloud2_to_csi(msg)
    assert err.value.reason == "bad_count"
    msg, _ = velodyne_cloud(10)
    with pytest.raises(ConversionError) as err:
        pointcloud2_to_csi(msg)
    assert err.value.reason == "missing_fields"


def test_sample_messages_roundtrip():
    rng = np.random.default_rng(5)
    # The depth sample as preprocess_depth gives it: the person's base-frame points, repeated in order
    # up to the fixed count when there are fewer voxels.
    person = rng.normal([3.0, 0.0, 0.9], [0.1, 0.2, 0.45], (1700, 3)).astype(np.float32)
    samples = {
        "depth": person[np.arange(DEPTH_NUM_POINTS) % len(person)],
        "lidar": rng.normal(size=(512, 3)).astype(np.float32),
        "csi": rng.normal(size=(6, 114, 10)).astype(np.float32),
    }
    assert {m: s.shape for m, s in samples.items()} == INPUT_SHAPES
    for modality, sample in samples.items():
        msg = sample_to_msg(modality, sample, header(3, 4, modality))
        assert isinstance(msg, PointCloud2)
        assert msg.header.stamp.sec == 3 and msg.header.frame_id == modality
        back = msg_to_sample(modality, msg)
        assert back.shape == sample.shape and back.dtype == np.float32
        np.testing.assert_array_equal(back, sample)


def test_depth_and_lidar_samples_are_the_same_xyz_cloud():
    """Both point samples travel as one unorganised x, y, z float32 cloud, built by the same function."""
    points = np.random.default_rng(7).normal([3.0, 0.0, 0.9], 0.3, (DEPTH_NUM_POINTS, 3)).astype(np.float32)
    depth, lidar = sample_to_msg("depth", points, header()), sample_to_msg("lidar", points, header())
    expected = xyz_to_pointcloud2(points, header())
    for msg in (depth, lidar):
        assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, DEPTH_NUM_POINTS, 12, 12 * 5120)
        assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
            ("x", 0, F32, 1),
            ("y", 4, F32, 1),
            ("z", 8, F32, 1),
        ]
        assert bytes(msg.data) == bytes(expected.data)
    # Any x, y, z cloud is read back, extra fields and padding too (here a Velodyne driver's layout).
    cloud, xyz = velodyne_cloud(40)
    np.testing.assert_array_equal(msg_to_sample("depth", cloud), xyz)


@pytest.mark.parametrize("modality", ["depth", "lidar"])
def test_point_samples_of_the_wrong_shape_are_refused(modality):
    """Not (N, 3): the old (1, 96, 128) depth image, an (N, 4) cloud with intensity, a flat array."""
    for shape in ((1, 96, 128), (96, 128), (512, 4), (1536,)):
        with pytest.raises(ConversionError) as err:
            sample_to_msg(modality, np.ones(shape, np.float32))
        assert err.value.reason == "bad_shape", shape
    with pytest.raises(ConversionError) as err:  # a cloud without x, y, z (here CSI) on the topic
        msg_to_sample(modality, csi_to_pointcloud2(np.ones((3, 4, 2)), np.ones((3, 4, 2))))
    assert err.value.reason == "missing_fields"


@pytest.mark.parametrize("order", [("x", "y", "z"), ("z", "x", "y")], ids=["consecutive", "shuffled"])
@pytest.mark.parametrize("big", [False, True])
def test_float64_and_shuffled_fields(order, big):
    # Layouts outside the common drivers: float64 coordinates, fields in another order, a leading pad.
    xyz = np.random.default_rng(6).normal(size=(40, 3))
    e = ">" if big else "<"
    offsets = {name: 4 + 8 * i for i, name in enumerate(order)}
    dt = np.dtype(
        {
            "names": list("xyz"),
            "formats": [e + "f8"] * 3,
            "offsets": [offsets[c] for c in "xyz"],
            "itemsize": 32,
        }
    )
    arr = np.zeros(40, dt)
    for i, c in enumerate("xyz"):
        arr[c] = xyz[:, i]
    msg = PointCloud2(
        height=1, width=40, point_step=32, row_step=32 * 40, is_bigendian=big, data=arr.tobytes()
    )
    msg.fields = [PointField(name=c, offset=offsets[c], datatype=PointField.FLOAT64, count=1) for c in "xyz"]
    out = pointcloud2_to_xyz(msg)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, xyz.astype(np.float32))

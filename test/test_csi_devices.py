"""Real CSI captures (csiread) onto MM-Fi's grid; resampling checked on synthetic channels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import SHARED_DATA

from midas_ros.csi_devices import (
    CsiCapture,
    CsiDeviceError,
    guess_device,
    load_frames,
    read_capture,
    resample_subcarriers,
    subcarrier_positions,
    to_mmfi_grid,
)
from midas_ros.preprocess import preprocess_csi

CSI_DIR = SHARED_DATA / "csi"
needs_data = pytest.mark.skipif(not CSI_DIR.is_dir(), reason=f"shared CSI captures not found in {CSI_DIR}")


@needs_data
@pytest.mark.parametrize(
    ("name", "device", "packets", "subcarriers"),
    [("5300_sample_0x1_ap.dat", "intel5300", 540, 30), ("atheros_ath_csi_1.dat", "atheros", 401, 56)],
)
def test_three_antenna_captures_map_to_mmfi_frames(name, device, packets, subcarriers):
    capture = read_capture(CSI_DIR / name)
    assert capture.device == device
    assert capture.csi.shape == (packets, subcarriers, 3, 2)
    frames = to_mmfi_grid(capture)
    assert len(frames) == packets // 10
    for frame in frames[:3]:
        assert frame.amplitude.shape == frame.phase.shape == (3, 114, 10)
        assert frame.amplitude.dtype == np.float32
        assert np.isfinite(frame.amplitude).all() and np.isfinite(frame.phase).all()
        assert (frame.amplitude >= 0).all() and frame.amplitude.max() > 0
        # The model's preprocessing accepts the frame as is.
        assert preprocess_csi(frame.amplitude, frame.phase).shape == (6, 114, 10)
    # Packet order and timestamps kept: the frames follow each other in device time.
    stamps = [f.timestamp_s for f in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    # Antenna k of frame 0, packet 0, at the tones shared by both grids equals the capture's own value.
    src_pos, dst_pos = subcarrier_positions(subcarriers), subcarrier_positions(114)
    shared = [i for i, p in enumerate(dst_pos) if np.isclose(src_pos, p).any()]
    assert shared, "the two tone grids share their edge tones at least"
    for i in shared:
        j = int(np.argmin(np.abs(src_pos - dst_pos[i])))
        np.testing.assert_allclose(frames[0].amplitude[:, i, 0], np.abs(capture.csi[0, j, :, 0]), rtol=1e-5)


@needs_data
@pytest.mark.parametrize(
    ("name", "device", "rx"), [("esp32_example_csi.csv", "esp32", 1), ("nexmon_example.pcap", "nexmon", 2)]
)
def test_captures_with_other_antenna_counts_are_refused_clearly(name, device, rx):
    capture = read_capture(CSI_DIR / name)
    assert capture.device == device and capture.csi.shape[2] == rx
    with pytest.raises(CsiDeviceError, match=rf"{device} capture has {rx} rx antenna\(s\).*needs 3"):
        load_frames(CSI_DIR / name)


def test_guess_device_and_unknown_files(tmp_path):
    assert guess_device("x/atheros_ath_csi_1.dat") == "atheros"
    assert guess_device("5300_sample.dat") == "intel5300"
    assert guess_device("a.pcap") == "nexmon"
    assert guess_device("b.csv") == "esp32"
    with pytest.raises(CsiDeviceError, match="device="):
        guess_device("capture.dat")
    with pytest.raises(CsiDeviceError, match="does not exist"):
        read_capture(tmp_path / "none.dat", "atheros")
    (tmp_path / "c.dat").write_bytes(b"")
    with pytest.raises(CsiDeviceError, match="unknown CSI device"):
        read_capture(tmp_path / "c.dat", "bluetooth")


def test_resampling_follows_a_linear_channel_through_phase_wraps():
    # A channel delay gives a phase linear in frequency that wraps several times across the band.
    k30 = subcarrier_positions(30)
    delay = 9.0  # radians across half the band: ~3 wraps over the whole band
    csi = (2.0 + 0.5 * k30) * np.exp(1j * delay * k30)
    amplitude, phase = resample_subcarriers(csi[None], 114)
    k114 = subcarrier_positions(114)
    np.testing.assert_allclose(amplitude[0], 2.0 + 0.5 * k114, atol=1e-5)
    # Unwrapped phase is the linear ramp up to a constant multiple of 2 pi.
    offset = phase[0, 0] - delay * k114[0]
    np.testing.assert_allclose(phase[0], delay * k114 + offset, atol=1e-4)
    assert np.isclose(offset / (2 * np.pi), round(offset / (2 * np.pi)), atol=1e-5)


def test_grouping_antenna_choice_and_short_captures():
    rng = np.random.default_rng(0)
    csi = rng.normal(size=(25, 114, 4, 1)) + 1j * rng.normal(size=(25, 114, 4, 1))
    capture = CsiCapture("atheros", csi, np.arange(25) * 0.01)
    with pytest.raises(CsiDeviceError, match="4 rx antenna"):
        to_mmfi_grid(capture)
    frames = to_mmfi_grid(capture, antennas=(3, 0, 1))
    assert len(frames) == 2  # 25 packets: two frames of 10, the last 5 dropped
    np.testing.assert_allclose(frames[1].amplitude[0, :, 4], np.abs(csi[14, :, 3, 0]), rtol=1e-6)
    np.testing.assert_allclose(frames[1].amplitude[2, :, 0], np.abs(csi[10, :, 1, 0]), rtol=1e-6)
    assert frames[1].timestamp_s == pytest.approx(0.1)
    with pytest.raises(CsiDeviceError, match="must pick 3"):
        to_mmfi_grid(capture, antennas=(0, 1, 7))
    with pytest.raises(CsiDeviceError, match="fewer than one frame"):
        to_mmfi_grid(CsiCapture("atheros", csi[:5, :, :3], None))

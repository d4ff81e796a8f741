"""Real WiFi CSI captures (csiread) mapped onto MM-Fi's grid: 3 rx antennas x 114 subcarriers x 10 packets.

Supported tools (csiread 1.4): Linux 802.11n CSI Tool (Intel 5300, ``.dat``), Atheros CSI Tool (``.dat``),
nexmon_csi (``.pcap``) and ESP32-CSI-Tool (``.csv``). The mapping:

- antennas: the receive antennas of the first transmit stream. MM-Fi has 3; a capture with another rx
  count (ESP32: 1, nexmon: one per radio core) is refused with a :class:`CsiDeviceError` naming the
  device and the counts, unless ``antennas`` picks 3 of them explicitly.
- subcarriers: resampled to 114 by their OFDM subcarrier index (Intel's 30 grouped tones, HT20's 56 and
  HT40's 114 are placed at their real frequencies, scaled to the band edges; other counts are taken as
  evenly spaced). Amplitude is interpolated linearly; phase is unwrapped over subcarriers first, then
  interpolated, so that the 2 pi wraps do not average into garbage.
- packets: consecutive packets grouped into frames of 10; a last incomplete frame is dropped.

Typical use: ``frames = load_frames("capture.dat")`` -> list of :class:`CsiFrame` with amplitude and
phase (3, 114, 10) float32, ready for ``preprocess_csi`` or the CSI topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import make_interp_spline

MMFI_ANTENNAS = 3
MMFI_SUBCARRIERS = 114
MMFI_PACKETS_PER_FRAME = 10
DEVICES = ("intel5300", "atheros", "nexmon", "esp32")


class CsiDeviceError(ValueError):
    """A capture that cannot be read or mapped onto MM-Fi's grid."""


@dataclass(frozen=True)
class CsiCapture:
    """Raw CSI of one capture: csi (packets, subcarriers, rx, tx) complex; timestamps in seconds or None."""

    device: str
    csi: np.ndarray
    timestamps_s: np.ndarray | None
    dropped_packets: int = 0  # packets with fewer rx/tx chains or tones than the capture's majority


@dataclass(frozen=True)
class CsiFrame:
    """One MM-Fi-shaped frame: amplitude, phase (antennas, subcarriers, packets) float32."""

    amplitude: np.ndarray
    phase: np.ndarray
    timestamp_s: float | None  # device clock of the frame's first packet, None if the tool has none


def guess_device(path: str | Path) -> str:
    """The capture tool from the file name: .pcap -> nexmon, .csv -> esp32, .dat -> atheros / intel5300."""
    path = Path(path)
    suffix, name = path.suffix.lower(), path.name.lower()
    if suffix == ".pcap":
        return "nexmon"
    if suffix == ".csv":
        return "esp32"
    if suffix == ".dat":
        # Both tools write .dat; the file names of the CSI tools' examples carry the NIC.
        if "ath" in name:
            return "atheros"
        if "5300" in name or "intel" in name or "iwl" in name:
            return "intel5300"
    raise CsiDeviceError(f"cannot tell the CSI tool of {path.name!r}; pass device= one of {DEVICES}")


def read_capture(
    path: str | Path, device: str | None = None, *, nexmon_chip: str = "4358", nexmon_bw: int = 80
) -> CsiCapture:
    """Read a capture file with csiread into a :class:`CsiCapture` (device guessed from the name if None)."""
    import csiread  # imported here: only the CSI tools need it

    path = Path(path)
    if not path.is_file():
        raise CsiDeviceError(f"CSI capture {path} does not exist")
    device = device or guess_device(path)
    if device == "intel5300":
        reader = csiread.Intel(str(path), nrxnum=3, ntxnum=3, pl_size=0, if_report=False)
        reader.read()
        csi, nrx, ntx = reader.csi, reader.Nrx, reader.Ntx
        # timestamp_low: the NIC's 1 MHz clock, low 32 bits (wraps every ~72 min).
        ts = np.cumsum(np.concatenate([[0], np.diff(reader.timestamp_low.astype(np.int64)) % 2**32]))
        return _keep_complete(device, csi, nrx, ntx, None, (ts + int(reader.timestamp_low[0])) * 1e-6)
    if device == "atheros":
        # tones=114 holds HT40 captures; HT20 packets fill their first 56 tones (num_tones says which).
        reader = csiread.Atheros(str(path), nrxnum=3, ntxnum=3, pl_size=0, tones=114, if_report=False)
        reader.read(endian="little")
        ts = reader.timestamp.astype(np.float64) * 1e-6  # TSF, microseconds
        return _keep_complete(device, reader.csi, reader.nr, reader.nc, reader.num_tones, ts)
    if device == "nexmon":
        reader = csiread.Nexmon(str(path), chip=nexmon_chip, bw=nexmon_bw, if_report=False)
        reader.read()
        return _assemble_nexmon(reader)
    if device == "esp32":
        reader = csiread.ESP32(str(path), csi_only=False, if_report=False)
        reader.read()
        csi = reader.csi[:, :, None, None]  # one rx, one tx
        return CsiCapture(device, csi, np.asarray(reader.real_timestamp, dtype=np.float64))
    raise CsiDeviceError(f"unknown CSI device {device!r}; known: {DEVICES}")


def _keep_complete(
    device: str,
    csi: np.ndarray,
    nrx: np.ndarray,
    ntx: np.ndarray,
    tones: np.ndarray | None,
    timestamps_s: np.ndarray,
) -> CsiCapture:
    """Keep the packets with the capture's most common (rx, tx, tones) configuration, trimmed to it."""
    if len(csi) == 0:
        raise CsiDeviceError(f"{device} capture holds no CSI packets")
    tones = np.full(len(csi), csi.shape[1]) if tones is None else np.asarray(tones)
    configs = np.stack([nrx, ntx, tones], axis=1)
    values, counts = np.unique(configs, axis=0, return_counts=True)
    n_rx, n_tx, n_tones = (int(v) for v in values[np.argmax(counts)])
    keep = (configs == (n_rx, n_tx, n_tones)).all(axis=1)
    return CsiCapture(
        device,
        csi[keep, :n_tones, :n_rx, :n_tx],
        timestamps_s[keep],
        dropped_packets=int((~keep).sum()),
    )


def _assemble_nexmon(reader) -> CsiCapture:
    """nexmon writes one packet per (rx core, spatial stream); regroup them by sequence number."""
    cores, streams = np.unique(reader.core), np.unique(reader.spatial)
    groups: dict[int, dict[tuple[int, int], int]] = {}
    for i, (seq, core, ss) in enumerate(zip(reader.seq, reader.core, reader.spatial, strict=True)):
        groups.setdefault(int(seq), {})[(int(core), int(ss))] = i
    complete = [g for g in groups.values() if len(g) == len(cores) * len(streams)]
    # nexmon's CSI is in FFT order (DC first): shift so subcarriers run from the lowest frequency.
    spectra = np.fft.fftshift(reader.csi, axes=1)
    csi = np.zeros((len(complete), spectra.shape[1], len(cores), len(streams)), dtype=np.complex128)
    first = []
    for p, g in enumerate(complete):
        for (core, ss), i in g.items():
            csi[p, :, int(np.searchsorted(cores, core)), int(np.searchsorted(streams, ss))] = spectra[i]
        first.append(min(g.values()))
    ts = reader.sec[first].astype(np.float64) + reader.usec[first] * 1e-6
    return CsiCapture("nexmon", csi, ts, dropped_packets=len(reader.csi) - sum(len(g) for g in complete))


def subcarrier_positions(count: int) -> np.ndarray:
    """Subcarrier frequencies scaled to [-1, 1] for the common 802.11n tone sets, else evenly spaced."""
    if count == 30:  # Intel 5300, 20 MHz, grouping 2
        k = np.r_[np.arange(-28, -1, 2), -1, np.arange(1, 28, 2), 28]
    elif count == 56:  # HT20
        k = np.r_[np.arange(-28, 0), np.arange(1, 29)]
    elif count == 114:  # HT40
        k = np.r_[np.arange(-58, -1), np.arange(2, 59)]
    else:
        return np.linspace(-1.0, 1.0, count)
    return k / np.abs(k).max()


def resample_subcarriers(csi: np.ndarray, count: int = MMFI_SUBCARRIERS) -> tuple[np.ndarray, np.ndarray]:
    """complex (..., subcarriers) -> amplitude, unwrapped phase (..., count) float32 at MM-Fi's tones."""
    src = subcarrier_positions(csi.shape[-1])
    dst = subcarrier_positions(count)
    amplitude = np.abs(csi)
    phase = np.unwrap(np.angle(csi), axis=-1)
    if csi.shape[-1] == count:
        return amplitude.astype(np.float32), phase.astype(np.float32)
    if csi.shape[-1] < 2:
        raise CsiDeviceError(f"cannot resample {csi.shape[-1]} subcarrier(s) to {count}")
    out = []
    for values in (amplitude, phase):
        out.append(make_interp_spline(src, values, k=1, axis=-1)(dst).astype(np.float32))
    return out[0], out[1]


def to_mmfi_grid(
    capture: CsiCapture,
    antennas: tuple[int, ...] | None = None,
    packets_per_frame: int = MMFI_PACKETS_PER_FRAME,
    subcarriers: int = MMFI_SUBCARRIERS,
) -> list[CsiFrame]:
    """Map a capture onto MM-Fi frames (amplitude and phase (3, subcarriers, packets_per_frame)).

    antennas: the rx antenna indices to use, in order; None uses all of them and requires exactly 3.
    """
    n_packets, n_sub, n_rx, n_tx = capture.csi.shape
    if antennas is None or n_rx < MMFI_ANTENNAS:
        if n_rx != MMFI_ANTENNAS:
            raise CsiDeviceError(
                f"{capture.device} capture has {n_rx} rx antenna(s) ({n_tx} tx, {n_sub} subcarriers); "
                f"MM-Fi's model needs {MMFI_ANTENNAS} rx antennas, so this device cannot feed it"
            )
        antennas = tuple(range(n_rx))
    if len(antennas) != MMFI_ANTENNAS or not all(0 <= a < n_rx for a in antennas):
        raise CsiDeviceError(
            f"antennas {antennas} must pick {MMFI_ANTENNAS} of the {n_rx} rx antennas "
            f"of this {capture.device} capture"
        )
    n_frames = n_packets // packets_per_frame
    if n_frames == 0:
        raise CsiDeviceError(
            f"{capture.device} capture has {n_packets} packets, fewer than one frame of {packets_per_frame}"
        )
    # First tx stream; (packets, subcarriers, rx) -> (packets, rx, subcarriers) for resampling.
    csi = capture.csi[: n_frames * packets_per_frame, :, list(antennas), 0].transpose(0, 2, 1)
    amplitude, phase = resample_subcarriers(csi, subcarriers)
    frames = []
    for f in range(n_frames):
        sl = slice(f * packets_per_frame, (f + 1) * packets_per_frame)
        stamp = None if capture.timestamps_s is None else float(capture.timestamps_s[sl.start])
        # (packets, rx, subcarriers) -> (rx, subcarriers, packets), MM-Fi's order.
        frames.append(
            CsiFrame(
                np.ascontiguousarray(amplitude[sl].transpose(1, 2, 0)),
                np.ascontiguousarray(phase[sl].transpose(1, 2, 0)),
                stamp,
            )
        )
    return frames


def load_frames(path: str | Path, device: str | None = None, **kwargs) -> list[CsiFrame]:
    """read_capture + to_mmfi_grid in one call; kwargs go to to_mmfi_grid (e.g. antennas=(0, 1, 2))."""
    return to_mmfi_grid(read_capture(path, device), **kwargs)


class LivePacketParser:
    """Parses single CSI packets as the CSI tools stream them (csiread's real-time ``pmsg``).

    intel5300: one netlink record per datagram, starting with its code byte (0xbb carries CSI; other
    codes such as 0xc1 are skipped); atheros: one record as the Atheros CSI Tool writes it.
    """

    def __init__(self, device: str) -> None:
        import csiread

        if device == "intel5300":
            self._reader = csiread.Intel(None, nrxnum=3, ntxnum=3, pl_size=0, if_report=False)
            self._ok = 0xBB
        elif device == "atheros":
            self._reader = csiread.Atheros(None, nrxnum=3, ntxnum=3, pl_size=0, tones=114, if_report=False)
            self._ok = 0xFF00
        else:
            raise CsiDeviceError(f"live CSI is supported for intel5300 and atheros, not {device!r}")
        self.device = device

    def parse(self, data: bytes) -> np.ndarray | None:
        """One packet's CSI (subcarriers, rx, tx) complex, or None when the data holds no CSI."""
        r = self._reader
        if r.pmsg(data) != self._ok:
            return None
        if self.device == "intel5300":
            n_rx, n_tx, n_tones = int(r.Nrx[0]), int(r.Ntx[0]), r.csi.shape[1]
        else:
            n_rx, n_tx, n_tones = int(r.nr[0]), int(r.nc[0]), int(r.num_tones[0])
        return np.array(r.csi[0, :n_tones, :n_rx, :n_tx])


class FrameAssembler:
    """Collects live packets into MM-Fi frames: ``push(csi)`` returns a CsiFrame every 10 packets."""

    def __init__(
        self,
        device: str,
        antennas: tuple[int, ...] | None = None,
        packets_per_frame: int = MMFI_PACKETS_PER_FRAME,
    ) -> None:
        self.device, self.antennas, self.packets_per_frame = device, antennas, packets_per_frame
        self._packets: list[np.ndarray] = []
        self.dropped_packets = 0  # packets whose shape differs from the frame's first packet

    def push(self, csi: np.ndarray, timestamp_s: float | None = None) -> CsiFrame | None:
        if self._packets and csi.shape != self._packets[0].shape:
            self.dropped_packets += 1
            return None
        if not self._packets:
            self._first_stamp = timestamp_s
        self._packets.append(csi)
        if len(self._packets) < self.packets_per_frame:
            return None
        stamps = None if self._first_stamp is None else np.full(self.packets_per_frame, self._first_stamp)
        capture = CsiCapture(self.device, np.stack(self._packets), stamps)
        self._packets = []
        return to_mmfi_grid(capture, self.antennas, self.packets_per_frame)[0]

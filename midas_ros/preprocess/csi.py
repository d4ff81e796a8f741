"""WiFi CSI frame -> the model's CSI input."""

from __future__ import annotations

import numpy as np

from midas_ros.interfaces import CSI_RAW_SHAPE
from midas_ros.preprocess.common import PreprocessError, as_real_array

# Amplitude relative to its packet's median, times this: a channel whose amplitude varies by 20 % over
# the band comes out with about unit spread.
CSI_AMPLITUDE_SCALE = 5.0
# Beyond this (three times the packet's median amplitude, or more) a value is a glitch (Atheros spike).
CSI_AMPLITUDE_CLIP = 10.0


def _fill_nan_by_packet(values: np.ndarray) -> np.ndarray:
    """Fill NaN with the mean of the same packet over antennas and subcarriers (MM-Fi toolbox style).

    A packet with no finite value at all takes the mean of the whole frame instead.
    """
    nan = np.isnan(values)
    if not nan.any():
        return values
    counts = (~nan).sum(axis=(0, 1))
    sums = np.where(nan, 0.0, values).sum(axis=(0, 1))
    frame_mean = sums.sum() / counts.sum()
    packet_mean = np.divide(sums, counts, out=np.full_like(sums, frame_mean), where=counts > 0)
    return np.where(nan, packet_mean[None, None, :], values)


def _sanitise_csi(array: np.ndarray, name: str) -> np.ndarray:
    values = array.astype(np.float64)  # a copy, so the caller's array is never touched
    values[np.isinf(values)] = np.nan
    if np.isnan(values).all():
        raise PreprocessError("non_finite", f"CSI {name} has no finite value")
    return _fill_nan_by_packet(values)


def _detrend_phase(phase: np.ndarray) -> np.ndarray:
    """Unwrap over subcarriers and remove the least-squares line per antenna and packet.

    The slope is the timing offset (sampling time / packet detection delay), the intercept the
    per-packet random phase of the carrier; both carry no information about the person.
    """
    unwrapped = np.unwrap(phase, axis=1)
    k = np.arange(phase.shape[1], dtype=np.float64)
    k -= k.mean()
    centred = unwrapped - unwrapped.mean(axis=1, keepdims=True)
    slope = np.einsum("k,akp->ap", k, centred) / np.dot(k, k)
    return centred - slope[:, None, :] * k[None, :, None]


def _remove_packet_gain(amplitude: np.ndarray) -> np.ndarray:
    """Divide each antenna's packet by its median amplitude over the subcarriers.

    The receiver's automatic gain control (and the transmitter's power control) scales all subcarriers of
    one packet and receive chain by one factor that changes from packet to packet; dividing it out leaves
    the channel's shape over frequency, which is where the person is seen: the line of sight (shadowed
    by a body in its path) against the room's multipath. The median is robust to a spike on a few
    subcarriers; a packet with no positive median (all zeros) is left as it is.
    """
    gain = np.median(amplitude, axis=1, keepdims=True)
    return np.divide(amplitude, gain, out=amplitude.copy(), where=gain > 1e-12)


def _normalise_amplitude(shape: np.ndarray) -> np.ndarray:
    """Gain-free amplitude (about 1) -> (shape - frame median) * CSI_AMPLITUDE_SCALE, clipped.

    A fixed scale, not the frame's own spread: how deeply the channel fades over the subcarriers is the
    cue (a body shadowing the line of sight leaves the multipath to dominate, and the fades deepen), and
    dividing by the frame's spread would normalise it away. Centring on the frame's median is a small
    shift, each packet's median being 1 already.
    """
    centred = shape - np.median(shape)
    return np.clip(centred * CSI_AMPLITUDE_SCALE, -CSI_AMPLITUDE_CLIP, CSI_AMPLITUDE_CLIP)


def preprocess_csi(amplitude: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """CSI amplitude and phase, each (3, 114, 10) antennas x subcarriers x packets -> (6, 114, 10) float32.

    Inf becomes NaN and NaN is filled with the packet's mean (MM-Fi toolbox); the phase is unwrapped
    over subcarriers with its linear slope and offset removed per antenna and packet; the amplitude has
    each antenna's packet gain (AGC) divided out and is then centred and scaled by fixed amounts, so what
    is left is the channel's shape over subcarriers, in which a body shadowing the line of sight shows.
    Channels 0-2 are amplitude, 3-5 phase (radians), per antenna.
    """
    amp = as_real_array(amplitude, "CSI amplitude")
    pha = as_real_array(phase, "CSI phase")
    for name, array in (("amplitude", amp), ("phase", pha)):
        if array.size == 0:
            raise PreprocessError("empty", f"CSI {name} is empty, shape {array.shape}")
        if array.shape != CSI_RAW_SHAPE:
            raise PreprocessError(
                "bad_shape",
                f"CSI {name} must be {CSI_RAW_SHAPE} (antennas, subcarriers, packets), got {array.shape}",
            )
    amp = _normalise_amplitude(_remove_packet_gain(_sanitise_csi(amp, "amplitude")))
    pha = _detrend_phase(_sanitise_csi(pha, "phase"))
    return np.concatenate([amp, pha], axis=0).astype(np.float32)

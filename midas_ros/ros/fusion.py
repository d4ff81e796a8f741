"""The fusion step as plain code: sample sets -> skeleton and fusion record, and when to withdraw it.

What the fusion node (fusion_node.py) does between its subscriptions, timers and publishers, without a
node, so that the replay's fast mode (midas_ros/replay/fast.py) runs the very same code on a bag's clock:

- `FUSION_PARAMETERS`: the node's parameters (names, defaults, descriptions: the node declares them,
  config/midas.yaml holds them), and `FusionSettings`, what decides its sets and outputs, read from them.
- `FusionPolicy`: the synchroniser and the policy around it. Each sample goes to `add` with its
  arrival time on the node's clock, a timer calls `poll`; the sets formed go to `on_set`. When time jumps
  back (the synchroniser restarts) or no sensor is alive any more, a skeleton that is showing is
  withdrawn (`on_withdraw`: the node deletes its markers). Thread-safe: the node calls it from its
  executor's threads and its inference worker.
- `fuse`: one forward pass on a set's samples -> `Fused` (joints, weights, inference time), which gives
  the markers, the PoseArray and, with the clock at publication, the `FusionRecord`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseArray
from visualization_msgs.msg import MarkerArray

from midas_ros import MODALITIES
from midas_ros.rig import BASE_FRAME
from midas_ros.ros.fusion_record import FusionRecord
from midas_ros.ros.markers import pose_array, skeleton_markers
from midas_ros.ros.parameters import ParameterSpec, resolve
from midas_ros.sync import NS_PER_S, ModalityConfig, SampleSet, StalenessSynchronizer

DEVICES = ("auto", "cuda", "cpu")
FUSION_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "checkpoint",
        "",
        "MIDAS checkpoint (.safetensors); empty = <share>/midas_ros/models/midas.safetensors",
    ),
    ParameterSpec("device", "auto", "inference device: auto, cuda or cpu"),
    ParameterSpec(
        "torch_threads",
        1,
        "torch CPU threads for inference (0 = torch's default); 1 leaves cores to the adapters",
    ),
    ParameterSpec(
        "frame_id",
        BASE_FRAME,
        "frame of the skeleton markers and poses: the base frame the adapters bring every input to",
    ),
    ParameterSpec(
        "gil_switch_interval_s",
        0.0005,
        "Python's thread switch interval for this process (0 = leave it): short so the inference "
        "thread is not starved by the callback threads",
    ),
    ParameterSpec(
        "max_latency_s",
        0.05,
        "a sample set waits at most this long after its first sample arrived for the other live "
        "sensors; a sensor whose samples arrive later than this after their set opened is 'late' "
        "and not waited for (raise it to the lag of a slow sensor to fuse it)",
    ),
    ParameterSpec("jump_back_s", 1.0, "stamps or the clock this far back restart synchronisation"),
    ParameterSpec("poll_period_s", 0.01, "how often open sets' waits are checked (node clock)"),
    ParameterSpec("marker_lifetime_s", 0.25, "markers expire after this long (about 2.5 frames at 10 Hz)"),
    ParameterSpec("diagnostics_period_s", 1.0, "period of the /diagnostics status (steady clock)"),
    *(
        spec
        for m in MODALITIES
        for spec in (
            ParameterSpec(f"{m}.timeout_s", 0.5, f"{m}: no arrival for this long (s) -> dead"),
            ParameterSpec(f"{m}.tolerance_s", 0.05, f"{m}: largest stamp offset (s) from the set's stamp"),
        )
    ),
)


@dataclass(frozen=True)
class FusionSettings:
    """The fusion node's parameters that decide its sets and outputs."""

    configs: dict[str, ModalityConfig]
    max_latency_s: float
    jump_back_s: float
    poll_period_s: float
    marker_lifetime_s: float
    frame_id: str
    torch_threads: int

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> FusionSettings:
        """From the node's parameter values (declared, or a mapping such as config/midas.yaml's section
        with overrides); a parameter not in `values` has its declared default."""
        p = resolve(FUSION_PARAMETERS, values)
        if float(p["poll_period_s"]) <= 0 or float(p["max_latency_s"]) < 0:
            raise ValueError("fusion_node: poll_period_s must be > 0 and max_latency_s >= 0")
        return cls(
            configs={
                m: ModalityConfig(
                    timeout_s=float(p[f"{m}.timeout_s"]), tolerance_s=float(p[f"{m}.tolerance_s"])
                )
                for m in MODALITIES
            },
            max_latency_s=float(p["max_latency_s"]),
            jump_back_s=float(p["jump_back_s"]),
            poll_period_s=float(p["poll_period_s"]),
            marker_lifetime_s=float(p["marker_lifetime_s"]),
            frame_id=str(p["frame_id"]),
            torch_threads=int(p["torch_threads"]),
        )

    def synchronizer(self) -> StalenessSynchronizer:
        return StalenessSynchronizer(
            self.configs, max_latency_s=self.max_latency_s, jump_back_s=self.jump_back_s
        )


def load_predictor(checkpoint: Path, device: str, torch_threads: int) -> Any:
    """The PosePredictor of a checkpoint (FileNotFoundError when there is none); torch_threads 0 =
    torch's default. torch is imported here: only when a model really runs."""
    from midas_ros.model import PosePredictor

    if not Path(checkpoint).exists():
        raise FileNotFoundError(
            f"checkpoint {checkpoint} not found: run midas_train or set the 'checkpoint' parameter"
        )
    return PosePredictor.from_checkpoint(checkpoint, device=device, num_threads=torch_threads or None)


@dataclass(frozen=True)
class Fused:
    """One forward pass on a set's samples: the skeleton and what it was made from."""

    sample_set: SampleSet
    joints: np.ndarray  # (17, 3) float64, base frame
    weights: dict[str, float]  # the modality weights used (0 for absent modalities)
    inference_ms: float

    @property
    def subset(self) -> tuple[str, ...]:
        """The live modalities, in MODALITIES order."""
        return tuple(m for m in MODALITIES if m in self.sample_set.samples)

    def _stamp(self) -> Time:
        sec, nanosec = divmod(self.sample_set.stamp_ns, NS_PER_S)
        return Time(sec=sec, nanosec=nanosec)

    def markers(self, frame_id: str, lifetime_s: float) -> MarkerArray:
        return skeleton_markers(
            self.joints, self.subset, frame_id=frame_id, stamp=self._stamp(), lifetime_s=lifetime_s
        )

    def poses(self, frame_id: str) -> PoseArray:
        return pose_array(self.joints, frame_id=frame_id, stamp=self._stamp())

    def record(self, publish_ns: int) -> FusionRecord:
        """The fusion record, with `publish_ns` the node's clock at publication."""
        sample_set = self.sample_set
        return FusionRecord(
            stamp_ns=sample_set.stamp_ns,
            subset=self.subset,
            weights=dict(self.weights),
            sample_stamps_ns=dict(sample_set.stamps_ns),
            missing=dict(sample_set.missing),
            wait_ms=sample_set.wait_s * 1e3,
            inference_ms=self.inference_ms,
            stamp_to_publish_ms=(publish_ns - sample_set.stamp_ns) / 1e6,
        )


def fuse(sample_set: SampleSet, predictor: Any) -> Fused:
    """One forward pass on the samples present (a PosePredictor: joints and weights at once), timed."""
    start = time.perf_counter()
    prediction = predictor.predict(sample_set.samples)
    return _fused(sample_set, prediction, (time.perf_counter() - start) * 1e3)


def fuse_many(sample_sets: Sequence[SampleSet], predictor: Any) -> list[Fused]:
    """`fuse` for many sets in batched forward passes (PosePredictor.predict_batch: the same skeletons);
    each set's inference_ms is an even share of the passes' time."""
    if not sample_sets:
        return []
    start = time.perf_counter()
    predictions = predictor.predict_batch([s.samples for s in sample_sets])
    share_ms = (time.perf_counter() - start) * 1e3 / len(sample_sets)
    return [_fused(s, p, share_ms) for s, p in zip(sample_sets, predictions, strict=True)]


def _fused(sample_set: SampleSet, prediction: Any, inference_ms: float) -> Fused:
    return Fused(
        sample_set,
        np.asarray(prediction.joints, dtype=np.float64),
        {m: float(w) for m, w in prediction.weights.items()},
        inference_ms,
    )


NO_SENSOR_ALIVE = "no sensor alive: skeleton withdrawn"


class FusionPolicy:
    """The synchroniser and the fusion node's policy around it (module docstring), on a clock in ns.

    on_set(sample_set): a set formed, to be fused (the node hands it to its worker).
    on_withdraw(stamp_ns, now_ns, reason): the skeleton showing is to be withdrawn (its markers deleted,
    stamped `stamp_ns`); reason is NO_SENSOR_ALIVE, or None when time jumped back.
    on_time_jump(): the synchroniser restarted its time line (time jumped back).
    """

    def __init__(
        self,
        settings: FusionSettings,
        *,
        on_set: Callable[[SampleSet], Any],
        on_withdraw: Callable[[int, int, str | None], None],
        on_time_jump: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.sync = settings.synchronizer()
        self._on_set, self._on_withdraw, self._on_time_jump = on_set, on_withdraw, on_time_jump
        self._lock = threading.Lock()
        self._seen_resets = 0
        self._showing = False
        self.sets_formed = 0

    def add(self, modality: str, stamp_ns: int, sample: Any, arrival_ns: int) -> None:
        """A sample that arrived at `arrival_ns`."""
        self._dispatch(self.sync.add(modality, stamp_ns, sample, arrival_ns), arrival_ns)

    def poll(self, now_ns: int) -> None:
        """The poll timer: open sets whose wait is over form; with no sensor alive the skeleton goes."""
        self._dispatch(self.sync.poll(now_ns), now_ns)
        if not any(s.alive for s in self.sync.stats(now_ns).values()):
            self._withdraw(now_ns, now_ns, NO_SENSOR_ALIVE)

    def showing(self) -> None:
        """A skeleton is being published (call before its markers go out)."""
        with self._lock:
            self._showing = True

    def _dispatch(self, sets: list[SampleSet], now_ns: int) -> None:
        resets = self.sync.resets
        with self._lock:
            jumped = resets != self._seen_resets
            self._seen_resets = resets
            self.sets_formed += len(sets)
        if jumped:
            self._on_time_jump()
            self._withdraw(0, now_ns, None)
        for sample_set in sets:
            self._on_set(sample_set)

    def _withdraw(self, stamp_ns: int, now_ns: int, reason: str | None) -> None:
        """Delete the skeleton instead of leaving the last one standing (once, while one shows)."""
        with self._lock:
            showing, self._showing = self._showing, False
        if showing:
            self._on_withdraw(stamp_ns, now_ns, reason)

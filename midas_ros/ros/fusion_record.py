"""The per-skeleton fusion record on midas/skeleton/fusion: what each published skeleton was made from.

One `diagnostic_msgs/DiagnosticArray` per skeleton, stamped with its sample set's stamp (the same stamp
as the skeleton's PoseArray and markers), holding one status whose message is the live subset and whose
values are the modality weights used, each sample's stamp, why the other sensors were missing, and the
latencies. Recorders and scorers read it with `parse_fusion_record` instead of parsing marker text; it
works on rclpy messages and on rosbags' deserialised ones alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from midas_ros import MODALITIES
from midas_ros.ros.conversions import stamp_to_ns
from midas_ros.sync import NS_PER_S

STATUS_NAME = "midas_ros/fusion"


@dataclass(frozen=True)
class FusionRecord:
    """What one skeleton was made from."""

    stamp_ns: int
    subset: tuple[str, ...]  # the live modalities, in MODALITIES order
    weights: dict[str, float]  # 0 for absent modalities
    sample_stamps_ns: dict[str, int]  # present modalities only
    missing: dict[str, str]  # absent modality -> reason
    wait_ms: float  # the set's wait for its sensors after its first sample arrived
    inference_ms: float
    stamp_to_publish_ms: float  # node clock at publication minus the set's stamp

    @property
    def label(self) -> str:
        return "+".join(self.subset) if self.subset else "none"

    def values(self) -> dict[str, str]:
        """The status's key/value pairs."""
        values = {"subset": self.label}
        values.update({f"weight/{m}": f"{self.weights.get(m, 0.0):.6g}" for m in MODALITIES})
        values.update({f"stamp/{m}": str(s) for m, s in self.sample_stamps_ns.items()})
        values.update({f"missing/{m}": reason for m, reason in self.missing.items()})
        values["wait_ms"] = f"{self.wait_ms:.3f}"
        values["inference_ms"] = f"{self.inference_ms:.3f}"
        values["stamp_to_publish_ms"] = f"{self.stamp_to_publish_ms:.3f}"
        return values


def fusion_record_msg(record: FusionRecord, frame_id: str) -> DiagnosticArray:
    """The record as the DiagnosticArray published on midas/skeleton/fusion."""
    sec, nanosec = divmod(record.stamp_ns, NS_PER_S)
    status = DiagnosticStatus(
        level=DiagnosticStatus.OK,
        name=STATUS_NAME,
        message=record.label,
        hardware_id="midas_ros",
        values=[KeyValue(key=k, value=v) for k, v in record.values().items()],
    )
    return DiagnosticArray(
        header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id), status=[status]
    )


def parse_fusion_record(msg: Any) -> FusionRecord:
    """A midas/skeleton/fusion DiagnosticArray (rclpy or rosbags) back to a FusionRecord."""
    status = next((s for s in msg.status if s.name == STATUS_NAME), None)
    if status is None:
        raise ValueError(f"no status named {STATUS_NAME!r} in this DiagnosticArray")
    values: Mapping[str, str] = {kv.key: kv.value for kv in status.values}
    subset = () if values["subset"] == "none" else tuple(values["subset"].split("+"))
    return FusionRecord(
        stamp_ns=stamp_to_ns(msg.header.stamp),
        subset=subset,
        weights={m: float(values[f"weight/{m}"]) for m in MODALITIES},
        sample_stamps_ns={m: int(values[f"stamp/{m}"]) for m in MODALITIES if f"stamp/{m}" in values},
        missing={m: values[f"missing/{m}"] for m in MODALITIES if f"missing/{m}" in values},
        wait_ms=float(values["wait_ms"]),
        inference_ms=float(values["inference_ms"]),
        stamp_to_publish_ms=float(values["stamp_to_publish_ms"]),
    )

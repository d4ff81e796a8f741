"""What each sensor's adapter makes of a bag's messages, in log-time order: fast replay's input.

A sensor's messages go through its sampler (ros/samples.py, as its adapter node makes it) in order, since
the sampler's PersonTrack follows the person from frame to frame; the sensors do not depend on each
other. So each sensor is a stream of its own (`sensor_arrivals`), and fast replay merges the streams by
log time (`merged_arrivals`). A stream runs in the replaying process, or in a process of its own
(`in_process=False`): then a bag's depth and LiDAR preprocessing run on other cores while the model runs,
and the arrivals are the same.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Any

import numpy as np

from midas_ros import MODALITIES
from midas_ros.preprocess import PreprocessError
from midas_ros.replay.bag import ReplayError
from midas_ros.replay.plan import ReplayPlan
from midas_ros.ros.bag_io import read_messages
from midas_ros.ros.conversions import ConversionError, stamp_to_ns
from midas_ros.ros.parameters import ADAPTER_NODES
from midas_ros.ros.samples import SAMPLERS, Sampler, fixed_pose

# Arrivals a preprocessing process sends at once (about 1 MB of depth samples), and chunks it may have
# made ahead of the replay (it keeps working while the replay runs the model on a batch; its memory
# stays bounded).
_CHUNK = 16
_CHUNKS_AHEAD = 8


@dataclass(frozen=True)
class Arrival:
    """One replayed message as the fusion node gets it: the sample its adapter made, or the reason the
    adapter rejected it (sample None). modality None: the depth camera's CameraInfo (no sample)."""

    log_ns: int
    modality: str | None
    stamp_ns: int = 0
    sample: np.ndarray | None = None
    reason: str = ""


def make_sampler(plan: ReplayPlan, modality: str) -> Sampler:
    """The sampler of `modality` as its adapter node makes it: the adapter's parameters, the plan's
    sensor pose."""
    pose = plan.poses.get(modality)
    try:
        sampler = SAMPLERS[modality](
            plan.adapter_parameters(modality), fixed_pose(pose.pose) if pose else None
        )
    except ValueError as err:
        raise ReplayError(f"{ADAPTER_NODES[modality]}: {err}") from err
    if modality == "depth" and plan.inputs.camera_info_topic:
        sampler.camera_info_source = plan.inputs.camera_info_topic
    return sampler


def sensor_arrivals(plan: ReplayPlan, modality: str) -> Iterator[Arrival]:
    """The arrivals of one sensor of the plan's bag, in log-time order (depth: with its CameraInfo)."""
    sampler = make_sampler(plan, modality)
    topic = plan.inputs.sensor_topics[modality]
    camera_info = plan.inputs.camera_info_topic if modality == "depth" else None
    for message in read_messages(plan.inputs.path, [topic, camera_info] if camera_info else [topic]):
        msg = message.deserialize()
        if message.topic != topic:
            with contextlib.suppress(ConversionError):  # an unusable CameraInfo is ignored, as the node does
                sampler.on_camera_info(msg)
            yield Arrival(message.timestamp_ns, None)
            continue
        stamp_ns = stamp_to_ns(msg.header.stamp)
        try:
            sample = sampler.sample(msg)
        except (ConversionError, PreprocessError) as err:
            yield Arrival(message.timestamp_ns, modality, stamp_ns, reason=err.reason)
            continue
        yield Arrival(message.timestamp_ns, modality, stamp_ns, sample)


def _produce(plan: ReplayPlan, modality: str, out: Any) -> None:
    """A preprocessing process: send the sensor's arrivals in chunks, then None (or the error). A thread
    sends, so that making the next chunks does not wait for the replay to take this one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the replaying process's: it stops us
    ready: queue.Queue[Any] = queue.Queue(maxsize=_CHUNKS_AHEAD)
    sender = threading.Thread(target=lambda: _send_until_none(ready, out), daemon=True)
    sender.start()
    try:
        chunk: list[Arrival] = []
        for arrival in sensor_arrivals(plan, modality):
            chunk.append(arrival)
            if len(chunk) == _CHUNK:
                ready.put(chunk)
                chunk = []
        ready.put(chunk)
        ready.put(None)
    except Exception as err:  # handed to the replaying process, which raises it
        ready.put(err)
        ready.put(None)
    sender.join()


def _send_until_none(ready: queue.Queue[Any], out: Any) -> None:
    while True:
        item = ready.get()
        if item is None:
            out.send(None)
            return
        out.send(item)


class _ProcessArrivals:
    """`sensor_arrivals` computed in a process of its own, started at once (spawned: torch and threads
    do not survive a fork), sent through a pipe; `close` stops it."""

    def __init__(self, plan: ReplayPlan, modality: str) -> None:
        context = get_context("spawn")
        self.modality = modality
        self._results, sender = context.Pipe(duplex=False)
        plan = replace(plan, ground_truth=None)  # the process needs none of it: less to send
        self._process = context.Process(
            target=_produce, args=(plan, modality, sender), name=f"midas_replay {modality}", daemon=True
        )
        self._process.start()
        sender.close()  # the process holds the only sending end: its end (or death) is end of file here

    def __iter__(self) -> Iterator[Arrival]:
        while True:
            try:
                item = self._results.recv()
            except EOFError:
                self._process.join()
                raise ReplayError(
                    f"the {self.modality} preprocessing process ended without its results "
                    f"(exit code {self._process.exitcode})"
                ) from None
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield from item

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._results.close()


@contextlib.contextmanager
def merged_arrivals(plan: ReplayPlan, *, in_process: bool = True) -> Iterator[Iterator[Arrival]]:
    """Every sensor's arrivals merged in log-time order (ties: MODALITIES order), as a context (its
    processes stop on leaving it). in_process=False starts the depth and LiDAR streams in processes of
    their own at once (CSI costs too little to be worth one)."""
    with contextlib.ExitStack() as stack:
        streams: list[Any] = []
        for modality in (m for m in MODALITIES if m in plan.inputs.sensor_topics):
            if not in_process and modality in ("depth", "lidar"):
                streams.append(stack.enter_context(contextlib.closing(_ProcessArrivals(plan, modality))))
            else:
                streams.append(stack.enter_context(contextlib.closing(sensor_arrivals(plan, modality))))
        yield heapq.merge(*streams, key=lambda arrival: arrival.log_ns)

"""Fast replay: the node graph's work in one plain Python loop, without DDS, as fast as the CPU allows.

For each message of the bag, in log-time order (arrivals.py):
- a CameraInfo updates the depth intrinsics; a sensor message becomes its sample with the class its
  adapter node uses (ros/samples.py: same parameters, conversion, preprocessing and PersonTrack), or is
  rejected with the adapter's reason (counted with the adapters' InputAccounting); with
  ``workers=True`` depth and LiDAR are preprocessed in processes of their own, on the other cores;
- the sample goes to the fusion node's own FusionPolicy (ros/fusion.py: the synchroniser with the
  node's parameters, time jumps, withdrawals) with the bag's log time as its arrival time (design.md:
  an offline replay that passes log times as arrivals gets the live node's sets);
- the fusion node's poll timer is emulated: ``poll`` at every ``poll_period_s`` tick of the bag's clock
  (ticks in a long silence past every timeout are skipped: nothing can change there), and at the end
  until the last open set has formed;
- each set formed goes through the model and the skeleton's markers, PoseArray and fusion record are
  written to the skeleton bag, as the fusion node publishes them; when the policy withdraws the
  skeleton (no sensor alive, time jumped back) the markers' DELETEALL is written as the node publishes
  it. Sets wait for the model in batches of `BATCH_SETS` (ros/fusion.py's `fuse_many`: the skeletons
  `fuse` gives one at a time, several times faster a frame on a CPU), then the batch's messages are
  written in the order the node publishes them.

What differs from live: adapters take no time (a sample arrives at its message's log time), no frame is
dropped because a node was busy, and the node clock at publication is the set's formation time plus
its share of its batch's inference time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from midas_ros.replay.arrivals import merged_arrivals
from midas_ros.replay.bag import ReplayError
from midas_ros.replay.plan import ReplayPlan
from midas_ros.replay.skeleton_bag import SKELETON_BAG_TOPICS, skeleton_messages, withdraw_message
from midas_ros.ros.accounting import InputAccounting
from midas_ros.ros.bag_io import BagRecorder
from midas_ros.ros.fusion import Fused, FusionPolicy, FusionSettings, fuse_many, load_predictor
from midas_ros.sync import SampleSet, to_ns


@dataclass
class RunStats:
    """What a replay run did (either mode)."""

    mode: str
    wall_s: float  # the replay itself (model loading and start-up not included)
    messages: int  # sensor and camera info messages read (fast) or played (live)
    skeletons: int
    bag_duration_s: float
    accounting: dict[str, dict[str, Any]] = field(default_factory=dict)  # modality -> counters
    rejections: list[tuple[str, int, str]] = field(default_factory=list)  # (modality, stamp ns, reason)
    start_s: float = 0.0  # model loading and node start-up

    @property
    def skeletons_per_s(self) -> float:
        return self.skeletons / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def realtime_factor(self) -> float:
        """Bag seconds replayed per wall second (2.0 = twice as fast as real time)."""
        return self.bag_duration_s / self.wall_s if self.wall_s > 0 else float("nan")

    def summary(self) -> str:
        return (
            f"{self.mode}: {self.messages} messages, {self.skeletons} skeletons in {self.wall_s:.1f} s "
            f"(+{self.start_s:.1f} s start-up): {self.skeletons_per_s:.1f} skeletons/s, real-time factor "
            f"{self.realtime_factor:.2f}x ({self.bag_duration_s:.1f} s of bag)"
        )


def accounting_dict(accounting: InputAccounting) -> dict[str, Any]:
    snap = accounting.snapshot()
    return {
        "received": snap.received,
        "processed": snap.processed,
        "rejected": dict(snap.rejected),
        "dropped_busy": snap.dropped_busy,
        "lost": snap.lost,
    }


# Sets fused at once. Past 8 a frame costs no less on the 2-core CPU; 32 amortises the rest.
BATCH_SETS = 32


class _SkeletonWriter:
    """What the fusion node publishes, written to the skeleton bag at the node clock's time: the fusion
    node's FusionPolicy (ros/fusion.py) fed on the bag's clock. Sets and withdrawals queue in order;
    `flush` fuses the queued sets in one batch and writes everything queued."""

    def __init__(self, settings: FusionSettings, predictor: Any, recorder: BagRecorder) -> None:
        self.settings, self.predictor, self.recorder = settings, predictor, recorder
        self.policy = FusionPolicy(settings, on_set=self._queue_set, on_withdraw=self._queue_withdraw)
        self.skeletons = 0
        self._log_ns = 0  # log times of the skeleton bag stay in order
        self._queued: list[SampleSet | tuple[int, int]] = []  # sets, and withdrawals (stamp, now)

    def _queue_withdraw(self, stamp_ns: int, now_ns: int, reason: str | None) -> None:
        self._queued.append((stamp_ns, now_ns))

    def _queue_set(self, sample_set: SampleSet) -> None:
        self.policy.showing()  # its skeleton goes out before anything that follows it (flush)
        self._queued.append(sample_set)
        if len(self._sets()) >= BATCH_SETS:
            self.flush()

    def _sets(self) -> list[SampleSet]:
        return [e for e in self._queued if isinstance(e, SampleSet)]

    def flush(self) -> None:
        fused = iter(fuse_many(self._sets(), self.predictor))
        for event in self._queued:
            if isinstance(event, SampleSet):
                self._publish(next(fused))
            else:
                self._write(*withdraw_message(self.settings.frame_id, event[0]), event[1])
        self._queued.clear()

    def _write(self, topic: str, rawdata: bytes, log_ns: int) -> None:
        self._log_ns = max(self._log_ns, log_ns)
        self.recorder.write(topic, self._log_ns, rawdata)

    def _publish(self, fused: Fused) -> None:
        # The node clock at publication: the set's formation plus the inference (adapters take no time).
        publish_ns = fused.sample_set.formed_ns + round(fused.inference_ms * 1e6)
        messages = skeleton_messages(
            fused,
            fused.record(publish_ns),
            frame_id=self.settings.frame_id,
            lifetime_s=self.settings.marker_lifetime_s,
        )
        for topic, rawdata in messages.items():
            self._write(topic, rawdata, publish_ns)
        self.skeletons += 1


class _PollClock:
    """The fusion node's poll timer on the bag's clock: ticks every period; in a silence longer than
    every wait and timeout (`quiet_ns` after the last arrival) the ticks in between are skipped."""

    def __init__(self, period_ns: int, quiet_ns: int, poll: Callable[[int], None]) -> None:
        self.period_ns, self.quiet_ns, self.poll = period_ns, quiet_ns, poll
        self.next_ns: int | None = None
        self.last_arrival_ns: int | None = None

    def advance(self, t_ns: int) -> None:
        """Run the ticks up to and including `t_ns`."""
        if self.next_ns is None:
            self.next_ns = -(-t_ns // self.period_ns) * self.period_ns
        while self.next_ns <= t_ns:
            if self.last_arrival_ns is not None and self.next_ns > self.last_arrival_ns + self.quiet_ns:
                self.next_ns = max(self.next_ns, (t_ns // self.period_ns) * self.period_ns)
            self.poll(self.next_ns)
            self.next_ns += self.period_ns

    def arrival(self, t_ns: int) -> None:
        self.last_arrival_ns = t_ns

    def flush(self) -> None:
        """Tick on past the last arrival until every wait and timeout has run out."""
        if self.last_arrival_ns is not None:
            self.advance(self.last_arrival_ns + self.quiet_ns)


def run_fast(
    plan: ReplayPlan,
    skeleton_bag: Path,
    *,
    progress: bool = True,
    predictor: Any = None,
    workers: bool = False,
) -> RunStats:
    """Replay `plan`'s bag (module docstring) and write the skeleton stream to `skeleton_bag` (MCAP,
    must not exist). predictor: a loaded PosePredictor (default: the plan's checkpoint). workers:
    preprocess depth and LiDAR in processes of their own (same output; for a machine with cores to
    spare: not inside a pool of replays)."""
    started = time.perf_counter()
    settings = plan.fusion_settings
    inputs = plan.inputs
    accounting = {m: InputAccounting() for m in inputs.sensor_topics}
    rejections: list[tuple[str, int, str]] = []
    total = sum(inputs.counts.get(t, 0) for t in inputs.replayed_topics)
    quiet_ns = to_ns(
        settings.max_latency_s + max(c.timeout_s + c.tolerance_s for c in settings.configs.values())
    ) + 2 * to_ns(settings.poll_period_s)
    messages = 0
    # The preprocessing processes start first: they load while the model does.
    with merged_arrivals(plan, in_process=not workers) as arrivals:
        if predictor is None:
            try:
                predictor = load_predictor(plan.checkpoint, plan.device, settings.torch_threads)
            except (OSError, RuntimeError, ValueError) as err:  # a file of another model version, ...
                raise ReplayError(f"cannot load the checkpoint {plan.checkpoint}: {err}") from err
        with BagRecorder(skeleton_bag, SKELETON_BAG_TOPICS) as recorder:
            writer = _SkeletonWriter(settings, predictor, recorder)
            clock = _PollClock(to_ns(settings.poll_period_s), quiet_ns, writer.policy.poll)
            start_s = time.perf_counter() - started
            loop_start = time.perf_counter()
            with tqdm(total=total, desc=plan.name, unit="msg", disable=not progress, leave=False) as bar:
                for arrival in arrivals:
                    clock.advance(arrival.log_ns)
                    messages += 1
                    bar.update()
                    modality = arrival.modality
                    if modality is None:  # the camera info (its sampler took it)
                        continue
                    accounting[modality].received()
                    if arrival.sample is None:
                        accounting[modality].rejected(arrival.reason)
                        rejections.append((modality, arrival.stamp_ns, arrival.reason))
                        continue
                    accounting[modality].processed()
                    clock.arrival(arrival.log_ns)
                    writer.policy.add(modality, arrival.stamp_ns, arrival.sample, arrival.log_ns)
                clock.flush()
                writer.flush()
            wall_s = time.perf_counter() - loop_start
    return RunStats(
        mode="fast",
        wall_s=wall_s,
        messages=messages,
        skeletons=writer.skeletons,
        bag_duration_s=inputs.duration_s,
        accounting={m: accounting_dict(a) for m, a in accounting.items()},
        rejections=rejections,
        start_s=start_s,
    )

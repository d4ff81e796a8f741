"""Batch-1 CPU inference benchmark of MIDAS (encoders included, 5-step refinement on).

Prints a markdown report: the machine, the full 3-modality rate (target >= 30 Hz), the refinement's
share of that time, a per-stage breakdown and per-subset timings. Uses random inputs of the real shapes
and an untrained model unless --checkpoint is given (the timing does not depend on the weights).

    python benchmarks/bench_inference.py --threads 1 --iters 200
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine import cpu_model  # benchmarks/machine.py (the script's folder is on sys.path)
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from midas_ros import MODALITIES
from midas_ros.model import INPUT_SHAPES, MIDAS, FusionModel, MidasConfig, load_checkpoint

# Process CPU time per call, filled by time_call: on a shared machine the wall time includes waiting for
# a core, while the CPU time (with one intra-op thread) approximates the wall time on an idle core.
CPU_MS: dict[str, float] = {}


def time_call(fn: Callable[[], object], iters: int, warmup: int, label: str) -> list[float]:
    """Per-call wall times in milliseconds (and the mean CPU time per call into CPU_MS[label])."""
    for _ in range(warmup):
        fn()
    times = []
    cpu_start = time.process_time()
    for _ in tqdm(range(iters), desc=label, leave=False):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    CPU_MS[label] = (time.process_time() - cpu_start) * 1e3 / iters
    return times


def summary(times: list[float]) -> tuple[float, float, float]:
    """(median ms, 90th percentile ms, rate Hz from the median)."""
    ordered = sorted(times)
    median = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return median, p90, 1e3 / median


def matmul_peak_gflops(size: int = 1024, iters: int = 10) -> float:
    """fp32 GFLOP/s of a large square matmul with torch's current threads (the best of `iters`)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(iters))
    return 2 * size**3 / best / 1e9


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch default)")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--checkpoint", type=Path, default=None, help="time a trained checkpoint instead")
    args = parser.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model: FusionModel = load_checkpoint(args.checkpoint) if args.checkpoint else MIDAS(MidasConfig())
    model.eval()
    inputs = {m: torch.randn(1, *INPUT_SHAPES[m]) for m in MODALITIES}
    # depth: a person-sized cloud 3 m ahead, about 0.9 m up (base frame), where preprocess_depth puts them
    for m in ("depth", "lidar"):
        inputs[m] = inputs[m] * torch.tensor([0.1, 0.2, 0.45]) + torch.tensor([3.0, 0.0, 0.9])
    all_present = torch.ones(1, 3, dtype=torch.bool)

    rows: list[tuple[str, list[float]]] = []
    with torch.inference_mode():
        label = "full forward, D+L+W (encoders + refinement + head)"
        full = time_call(lambda: model(inputs, all_present), args.iters, args.warmup, label)
        rows.append((label, full))
        anchor = model.anchors(inputs, all_present)
        for j, m in enumerate(MODALITIES):
            label = f"encoder {m}"

            def encode(m: str = m, j: int = j) -> torch.Tensor:
                return model.encode_modality(m, inputs[m], all_present[:, j], anchor)

            rows.append((label, time_call(encode, args.iters, args.warmup, label)))
        tokens = model.encode(inputs, all_present, anchor)
        label = "fusion block (projections + refinement + head)"
        after = time_call(
            lambda: model.forward_from_tokens(tokens, all_present, anchor), args.iters, args.warmup, label
        )
        rows.append((label, after))
        refine_times: list[float] | None = None
        if isinstance(model, MIDAS) and model.refiner is not None:
            students = torch.cat([f for _, _, f in model.project(tokens, all_present)])
            latent = model.refiner.to_latent(students)
            label = "refinement: noise adapter + 5 DDIM steps (3 rows)"
            refine_times = time_call(lambda: model.refiner.refine(latent), args.iters, args.warmup, label)
            rows.append((label, refine_times))

        subset_rows = []
        for r in (1, 2, 3):
            for subset in itertools.combinations(range(3), r):
                present = torch.zeros(1, 3, dtype=torch.bool)
                present[0, list(subset)] = True
                sample = {MODALITIES[j]: inputs[MODALITIES[j]] for j in subset}
                name = "subset " + "+".join("DLW"[j] for j in subset)
                times = time_call(lambda s=sample, p=present: model(s, p), args.iters, args.warmup, name)
                subset_rows.append((name, times))

    with FlopCounterMode(display=False) as counter:  # (grad mode: its module tracker needs it)
        model(inputs, all_present)
    flops = counter.get_total_flops()
    peak = matmul_peak_gflops()
    full_median = summary(full)[0]
    load = os.getloadavg()
    print("# Batch-1 CPU inference benchmark\n")
    print(
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op thread(s)"
    )
    print(f"- model: {model.kind}, config {model.config.to_dict()}")
    print(
        f"- fusion block parameters: {model.fusion_parameter_count() / 1e6:.3f}M; "
        f"encoders {sum(p.numel() for p in model.encoder_parameters()) / 1e6:.3f}M"
    )
    print(f"- load average at the end (1/5/15 min): {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    print(f"- {args.iters} timed calls after {args.warmup} warm-up calls per row (rate = 1 / median)\n")
    print("| what | median ms | p90 ms | Hz (wall) | CPU ms/call |")
    print("|---|---|---|---|---|")
    for name, times in rows + subset_rows:
        med, p90, hz = summary(times)
        print(f"| {name} | {med:.2f} | {p90:.2f} | {hz:.1f} | {CPU_MS[name]:.2f} |")
    full_cpu = CPU_MS[rows[0][0]]
    if refine_times is not None:
        share = statistics.median(refine_times) / full_median
        cpu_share = CPU_MS[rows[-1][0]] / full_cpu
        print(
            f"\nRefinement share of the full D+L+W forward: {100 * share:.0f}% of the wall time "
            f"(median / median), {100 * cpu_share:.0f}% of the CPU time"
        )
    achieved = flops / full_median / 1e6  # GFLOP/s
    print(
        f"FLOPs per D+L+W frame (torch's counter: matmuls and convolutions): {flops / 1e9:.3f} GFLOP; at the "
        f"measured median that is {achieved:.1f} GFLOP/s, {100 * achieved / peak:.0f}% of this machine's "
        f"fp32 matmul peak with these threads ({peak:.1f} GFLOP/s, 1024^3 matmul)"
    )
    verdict = "meets" if 1e3 / full_median >= 30 else "misses"
    print(
        f"Full D+L+W: {1e3 / full_median:.1f} Hz wall ({verdict} the 30 Hz target), "
        f"{1e3 / full_cpu:.1f} Hz by CPU time per call"
    )


if __name__ == "__main__":
    main()

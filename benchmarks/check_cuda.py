"""The CUDA path on a GPU machine: the shipped model gives the same poses on CUDA as on the CPU, its
batch-1 and batched speed there, and a tiny recipe (stage 1, stage 2, all five models) trains on CUDA.

    python benchmarks/check_cuda.py --out docs/bench_cuda.md
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from midas_ros.interfaces import INPUT_SHAPES
from midas_ros.model import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def person_inputs(batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Person-sized clouds 3-4 m ahead and CSI noise, in the inputs' real shapes."""
    gen = torch.Generator().manual_seed(seed)

    def cloud(count: int) -> torch.Tensor:
        unit = torch.rand(batch, count, 3, generator=gen)
        centre = torch.rand(batch, 1, 2, generator=gen) * torch.tensor([1.0, 2.0]) + torch.tensor([3.0, -1.0])
        xy = centre + (unit[..., :2] - 0.5) * torch.tensor([0.3, 0.6])
        return torch.cat([xy, 1.8 * unit[..., 2:]], dim=-1)

    return {
        "depth": cloud(INPUT_SHAPES["depth"][0]),
        "lidar": cloud(INPUT_SHAPES["lidar"][0]),
        "csi": torch.randn(batch, *INPUT_SHAPES["csi"], generator=gen),
    }


def timed(fn, iters: int) -> list[float]:
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "midas.safetensors")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_cuda.md")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    lines = [f"# CUDA check\n\nDevice: {torch.cuda.get_device_name()}, torch {torch.__version__}.\n"]

    cpu = load_checkpoint(args.checkpoint, "cpu")
    gpu = load_checkpoint(args.checkpoint, "cuda")
    inputs = person_inputs(64, 0)
    present = torch.ones(64, 3, dtype=torch.bool)
    present[::3, 0] = False  # some rows without depth, some without LiDAR: every anchor rule runs
    present[1::3, 1] = False
    with torch.inference_mode():
        a = cpu(inputs, present).pose
        b = gpu({m: x.cuda() for m, x in inputs.items()}, present.cuda()).pose.cpu()
    diff = (a - b).norm(dim=-1).max().item() * 1e3
    lines.append(f"- Same 64 inputs (mixed subsets) on CPU and CUDA: largest joint difference {diff:.3f} mm.")

    one = {m: x[:1].cuda() for m, x in inputs.items()}
    all_present = torch.ones(1, 3, dtype=torch.bool, device="cuda")
    with torch.inference_mode():
        t1 = timed(lambda: gpu(one, all_present), 200)
        big = {m: x.cuda() for m, x in inputs.items()}
        t64 = timed(lambda: gpu(big, torch.ones(64, 3, dtype=torch.bool, device="cuda")), 50)
    p50 = statistics.median(t1)
    lines.append(
        f"- Batch-1 D+L+W with refinement: p50 {p50:.2f} ms ({1e3 / p50:.0f} Hz), "
        f"p90 {sorted(t1)[179]:.2f} ms."
    )
    lines.append(
        f"- Batch 64: {statistics.median(t64):.2f} ms ({64e3 / statistics.median(t64):.0f} frames/s)."
    )

    sys.path.insert(0, str(ROOT / "test"))
    from synthetic_data import synthetic_set

    from midas_ros.train.recipe import PRESETS, run_recipe_on

    out = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    result = run_recipe_on(synthetic_set(frames_per_subject=32), out, PRESETS["tiny"], device="cuda")
    lines.append(
        f"- Tiny recipe (stage 1, token cache, five stage-2 models, evaluation) on CUDA: "
        f"{time.perf_counter() - start:.1f} s, stages {sorted(result.timings_s)}."
    )
    shutil.rmtree(out, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

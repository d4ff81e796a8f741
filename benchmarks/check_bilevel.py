"""Measure the exact (second-order) bi-level weight gradient against its first-order approximation.

    PYTHONPATH=. .venv/bin/python benchmarks/check_bilevel.py --runs runs/wide [--steps 60] [--probes 5]

Uses a finished stage 1 of a recipe run. Trains MIDAS for `steps` inner steps from the stage-1
encoders, and every steps/probes steps compares, on the same batches and random draws, the exact outer
gradient with the first-order one (the look-ahead parameters detached). Prints cosine similarity,
relative difference and the time of each kind of outer step; writes <runs>/check_bilevel.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from midas_ros.model import load_checkpoint
from midas_ros.train import state
from midas_ros.train.bilevel import _outer_gradient, compare_first_order
from midas_ros.train.data import build_token_cache, load_preprocessed
from midas_ros.train.recipe import Recipe
from midas_ros.train.splits import load_split
from midas_ros.train.stage1 import pose_loss
from midas_ros.train.stage2 import WEIGHT_PARAM, _FromTokens, init_from_stage1, training_loss
from midas_ros.train.subsets import random_present


def measure(run_dir: Path, data_root: Path, steps: int, probes: int, seed: int = 0) -> dict:
    recipe_info = json.loads((run_dir / "recipe.json").read_text())
    preset = Recipe.from_dict(recipe_info["recipe"])
    settings = preset.stage2
    device = torch.device("cpu")
    data = load_preprocessed(data_root, run_dir / "preprocessed.npz")
    split = load_split(run_dir)
    train_rows = split.indices(data.subject, "inner_train")
    val_rows = split.indices(data.subject, "outer_val")
    rng = np.random.default_rng(seed)
    # A few thousand frames are plenty for gradient probes and keep the token cache small.
    train_rows = np.sort(rng.choice(train_rows, min(len(train_rows), 2000), replace=False))
    val_rows = np.sort(rng.choice(val_rows, min(len(val_rows), 1000), replace=False))
    stage1 = load_checkpoint(state.final_stem(run_dir, "stage1"), device)
    subset = data.select(np.concatenate([train_rows, val_rows]))
    cache = build_token_cache(stage1, subset, device)
    train_idx = np.arange(len(train_rows))
    val_idx = np.arange(len(train_rows), len(subset))

    torch.manual_seed(seed)
    model = init_from_stage1("midas", preset.model, stage1, device)
    for p in model.encoder_parameters():
        p.requires_grad_(False)
    wrapper = _FromTokens(model)
    inner_opt = torch.optim.Adam([p for p in model.model_parameters() if p.requires_grad], lr=settings.lr)
    g = torch.Generator().manual_seed(seed)

    def batch(rows: np.ndarray) -> tuple:
        index = torch.from_numpy(rng.choice(rows, settings.batch_size, replace=False))
        present = random_present(cache.available[index], g)
        tokens, anchor = cache.batch(index, present, device)
        return tokens, present, anchor, cache.joints[index]

    def inner_fn(params: dict[str, Tensor], b: tuple) -> Tensor:
        return training_loss(functional_call(wrapper, params, (*b[:3], True)), b[3], settings)[0]

    def outer_fn(params: dict[str, Tensor], b: tuple) -> Tensor:
        return pose_loss(functional_call(wrapper, params, (*b[:3], False)).pose, b[3])

    records = []
    probe_every = max(1, steps // probes)
    for step in range(steps + 1):
        tb = batch(train_idx)
        if step % probe_every == 0 and step > 0:
            vb = batch(val_idx)
            stats = compare_first_order(wrapper, WEIGHT_PARAM, inner_fn, outer_fn, tb, vb, inner_opt)
            timing = {}
            for first_order in (False, True):
                t0 = time.perf_counter()
                _outer_gradient(wrapper, WEIGHT_PARAM, inner_fn, outer_fn, tb, vb, inner_opt, first_order)
                timing["first_order_s" if first_order else "exact_s"] = time.perf_counter() - t0
            records.append({"step": step, **stats, **timing})
            print(json.dumps(records[-1]))
        model.train()
        out = model.forward_from_tokens(*tb[:3], True)
        loss, _ = training_loss(out, tb[3], settings)
        inner_opt.zero_grad(set_to_none=True)
        loss.backward()
        inner_opt.step()
    summary = {
        "probes": records,
        "mean_cosine": float(np.mean([r["cosine"] for r in records])),
        "mean_relative_difference": float(np.mean([r["relative_difference"] for r in records])),
        "mean_exact_s": float(np.mean([r["exact_s"] for r in records])),
        "mean_first_order_s": float(np.mean([r["first_order_s"] for r in records])),
        "settings": {
            "steps": steps,
            "batch_size": settings.batch_size,
            "model": replace(preset.model).to_dict(),
        },
    }
    (run_dir / "check_bilevel.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/wide"))
    parser.add_argument("--data", type=Path, default=Path("data/mmfi_wide"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    summary = measure(args.runs, args.data, args.steps, args.probes)
    print(json.dumps({k: v for k, v in summary.items() if k != "probes"}, indent=2))


if __name__ == "__main__":
    main()

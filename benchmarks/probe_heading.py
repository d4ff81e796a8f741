"""Heading probe: how well can a person's facing direction be read off the depth model's input?

Renders single frames of simulated people (all 40 subjects in their rooms, a random action pose from
midas_ros.sim.motions, a random spot in the camera's view and a uniformly random heading) with MM-Fi's
depth camera (midas_ros.rig.MMFI_RIG, D435-like noise), runs them through the model's depth
preprocessing (midas_ros.preprocess.preprocess_depth: the person's visible surface as base-frame
points), draws them into a person-centred, metric crop (5 cm cells, 1.2 m wide, floor to 2 m, looking
along the line of sight to the person) and fits two probes, five-fold by
subject (8 test subjects a fold, every frame tested once):

- ridge regression from the crop's pixels to (cos, sin) of the heading relative to the viewing ray;
- a tiny CNN (three conv layers, one CPU thread) with the same target and left-right mirror
  augmentation.

It does this twice on the same poses, places and noise: for the body without the front/back shape cues
(`body_mesh(..., cues=False)`, the body before them) and with them (the default). Reported per probe:
the fraction of frames whose heading error exceeds 90 deg, the median and mean error, and the first for
people facing the camera, side-on and facing away. A probe that cannot tell front from back errs by
more than 90 deg in about half of the frames.

    PYTHONPATH=. .venv/bin/python benchmarks/probe_heading.py [--per-subject 25] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_model
from midas_ros.mmfi.layout import environment_of
from midas_ros.preprocess import PreprocessError, preprocess_depth
from midas_ros.rig import MMFI_RIG
from midas_ros.sim.body import body_mesh, forward_kinematics, make_body
from midas_ros.sim.depth import DepthRenderer, add_depth_noise
from midas_ros.sim.motions import ACTIONS, action_params
from midas_ros.sim.room import room_mesh, room_of

SUBJECTS = tuple(range(1, 41))
FOLDS = 5  # fold k tests the subjects with subject % FOLDS == k: 8 subjects, two per room
# The crop: lateral offsets (image right positive) and heights above the floor, metres.
CELL_M = 0.05
LATERAL = np.arange(-0.6, 0.6 + 1e-9, CELL_M)
HEIGHTS = np.arange(1.95, -0.01, -CELL_M)  # top row first
REL_CLIP_M = 0.5


def wrap(angle: np.ndarray) -> np.ndarray:
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def crop(points: np.ndarray) -> np.ndarray:
    """The depth input's base-frame points (N, 3) -> (2, len(HEIGHTS), len(LATERAL)): seen along the
    horizontal line of sight from the base origin to the points' mean, each cell's nearest distance
    relative to the person's median distance (clipped, 0 off the person), and the person mask."""
    points = np.asarray(points, dtype=np.float64)
    centre = points[:, :2].mean(axis=0)
    c, s = centre / np.linalg.norm(centre)
    forward = c * points[:, 0] + s * points[:, 1]  # along the line of sight
    right = s * points[:, 0] - c * points[:, 1]  # 0 at the centre, positive to the viewer's right
    d = float(np.median(forward))
    col = np.round((right - LATERAL[0]) / CELL_M).astype(int)
    row = np.round((HEIGHTS[0] - points[:, 2]) / CELL_M).astype(int)
    inside = (col >= 0) & (col < len(LATERAL)) & (row >= 0) & (row < len(HEIGHTS))
    nearest = np.full(len(HEIGHTS) * len(LATERAL), np.inf)
    np.minimum.at(nearest, row[inside] * len(LATERAL) + col[inside], forward[inside])
    nearest = nearest.reshape(len(HEIGHTS), len(LATERAL))
    on = np.isfinite(nearest)
    rel = np.where(on, np.clip(nearest - d, -REL_CLIP_M, REL_CLIP_M), 0.0)
    return np.stack([rel, on.astype(np.float64)]).astype(np.float32)


def render_subject(subject: int, per_subject: int, seed: int) -> dict[str, np.ndarray]:
    """Crops of both bodies (without and with cues) of one subject, for the same poses, places and
    depth noise; frames that preprocess_depth rejects (for either body) are left out."""
    crops = {False: [], True: []}
    rel_heading = []
    rejected = 0
    rng = np.random.default_rng([seed, subject])
    body = make_body(subject, seed)
    renderer = DepthRenderer(*room_mesh(room_of(environment_of(subject))))
    for _ in range(per_subject):
        action = int(rng.integers(1, len(ACTIONS) + 1))
        params = action_params(action, np.zeros(1), rng)
        x = rng.uniform(1.8, 4.0)
        y = rng.uniform(-0.3 * x, 0.3 * x)
        heading = rng.uniform(-np.pi, np.pi)
        joints = forward_kinematics(body, params, (x, y), heading)[0]
        noise_seed = int(rng.integers(2**32))
        out = {}
        for cues in (False, True):
            depth = renderer.render(*body_mesh(joints, body, cues))
            depth_mm = add_depth_noise(depth, np.random.default_rng(noise_seed))
            try:
                points = preprocess_depth(depth_mm, MMFI_RIG.depth_intrinsics, MMFI_RIG.depth_pose)
            except PreprocessError:
                break
            out[cues] = crop(points)
        if len(out) < 2:
            rejected += 1
            continue
        for cues in (False, True):
            crops[cues].append(out[cues])
        rel_heading.append(wrap(heading - np.arctan2(y, x)))
    n = len(rel_heading)
    shape = (0, 2, len(HEIGHTS), len(LATERAL))
    return {
        "legacy": np.stack(crops[False]) if n else np.zeros(shape, np.float32),
        "cues": np.stack(crops[True]) if n else np.zeros(shape, np.float32),
        "subject": np.full(n, subject),
        "rel_heading": np.array(rel_heading),
        "rejected": np.array([rejected]),
    }


def render_set(per_subject: int, seed: int, workers: int) -> dict[str, np.ndarray]:
    """render_subject for all SUBJECTS, concatenated (worker processes: the result does not depend on
    their number)."""
    if workers <= 1:
        parts = [render_subject(s, per_subject, seed) for s in SUBJECTS]
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            parts = list(pool.map(render_subject, SUBJECTS, repeat(per_subject), repeat(seed)))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def target(rel_heading: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(rel_heading), np.sin(rel_heading)], axis=1)


def ridge_probe(x_train, t_train, x_test, groups) -> np.ndarray:
    """Ridge regression, its penalty chosen on held-out training subjects; returns test (cos, sin)."""
    x_train = x_train.reshape(len(x_train), -1).astype(np.float64)
    x_test = x_test.reshape(len(x_test), -1).astype(np.float64)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6

    def fit(x, t, lam):
        xs = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
        a = xs.T @ xs + lam * np.eye(xs.shape[1])
        a[-1, -1] -= lam  # no penalty on the bias
        return np.linalg.solve(a, xs.T @ t)

    def predict(w, x):
        return np.hstack([(x - mean) / std, np.ones((len(x), 1))]) @ w

    held = np.isin(groups, np.unique(groups)[::4])
    best = None
    for lam in (1.0, 10.0, 100.0, 1e3, 1e4, 1e5):
        w = fit(x_train[~held], t_train[~held], lam)
        err = heading_errors(predict(w, x_train[held]), t_train[held])
        if best is None or err.mean() < best[0]:
            best = (err.mean(), lam)
    return predict(fit(x_train, t_train, best[1]), x_test)


def cnn_probe(x_train, t_train, x_test, seed: int, epochs: int) -> np.ndarray:
    """A tiny CNN on the crops, mirror-augmented (mirroring negates the relative heading)."""
    import torch
    from torch import nn

    torch.set_num_threads(1)  # steady under load; the folds run in parallel instead
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(2, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.LazyLinear(2),
    )
    xt, tt = torch.from_numpy(x_train), torch.from_numpy(t_train.astype(np.float32))
    net(xt[:2])  # materialise the lazy layer
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * ((len(xt) + 63) // 64))
    gen = torch.Generator().manual_seed(seed)
    flip_sign = torch.tensor([1.0, -1.0])
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = order[i : i + 64]
            x, t = xt[idx], tt[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            t = torch.where(flip[:, None], t * flip_sign, t)
            loss = ((net(x) - t) ** 2).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        x = torch.from_numpy(x_test)
        # test-time mirror averaging
        out = 0.5 * (net(x) + net(x.flip(-1)) * flip_sign)
    return out.numpy().astype(np.float64)


def heading_errors(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Absolute angle (rad) between predicted and true (cos, sin)."""
    return np.abs(wrap(np.arctan2(pred[:, 1], pred[:, 0]) - np.arctan2(truth[:, 1], truth[:, 0])))


def summary(err: np.ndarray) -> dict[str, float]:
    deg = np.degrees(err)
    return {"over90": float(np.mean(deg > 90)), "median": float(np.median(deg)), "mean": float(deg.mean())}


def fold(data: dict[str, np.ndarray], variant: str, k: int, epochs: int, seed: int) -> dict[str, np.ndarray]:
    """Train both probes without the subjects of fold k (subject % FOLDS == k) and predict those."""
    test = data["subject"] % FOLDS == k
    x, t = data[variant], target(data["rel_heading"])
    start = time.perf_counter()
    ridge = ridge_probe(x[~test], t[~test], x[test], data["subject"][~test])
    cnn = cnn_probe(x[~test], t[~test], x[test], seed + k, epochs)
    return {"test": test, "ridge": ridge, "cnn": cnn, "seconds": np.array(time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-subject", type=int, default=25, help="frames per subject (40 subjects)")
    parser.add_argument("--epochs", type=int, default=20, help="CNN training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--cache", type=Path, help="keep the rendered crops in this .npz (reused if there)")
    args = parser.parse_args()

    start = time.perf_counter()
    if args.cache and args.cache.is_file():
        data = dict(np.load(args.cache))
    else:
        data = render_set(args.per_subject, args.seed, args.workers)
        if args.cache:
            np.savez_compressed(args.cache, **data)
    render_s = time.perf_counter() - start

    start = time.perf_counter()
    jobs = [(v, k) for v in ("legacy", "cues") for k in range(FOLDS)]
    if args.workers <= 1:
        results = [fold(data, v, k, args.epochs, args.seed) for v, k in jobs]
    else:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(fold, data, v, k, args.epochs, args.seed) for v, k in jobs]
            results = [f.result() for f in futures]
    probe_s = time.perf_counter() - start

    truth = target(data["rel_heading"])
    # how the person faces the camera: rel_heading pi = facing it, 0 = back to it
    away_from_facing = np.abs(wrap(data["rel_heading"] - np.pi))
    groups = {
        "facing": away_from_facing <= np.deg2rad(60),
        "side-on": (away_from_facing > np.deg2rad(60)) & (away_from_facing < np.deg2rad(120)),
        "away": away_from_facing >= np.deg2rad(120),
    }
    labels = {"legacy": "without cues (before)", "cues": "with cues (after)"}
    lines = [
        f"Frames: {len(truth)} (40 subjects x {args.per_subject}, "
        f"{int(data['rejected'].sum())} rejected by preprocess_depth), headings uniform over 360 deg; "
        f"{FOLDS}-fold by subject (subject % {FOLDS}), every frame tested once. Error > 90 deg also "
        "for people facing the camera (within 60 deg), side-on, and facing away (within 60 deg).",
        "",
        "| body | probe | error > 90 deg | median error | mean error | > 90 deg: facing / side-on / away |",
        "|---|---|---|---|---|---|",
    ]
    for variant in ("legacy", "cues"):
        for probe, name in (("ridge", "ridge"), ("cnn", "tiny CNN")):
            pred = np.zeros_like(truth)
            for (v, _), r in zip(jobs, results, strict=True):
                if v == variant:
                    pred[r["test"]] = r[probe]
            err = heading_errors(pred, truth)
            s = summary(err)
            by_group = " / ".join(f"{100 * np.mean(err[g] > np.pi / 2):.1f} %" for g in groups.values())
            lines.append(
                f"| {labels[variant]} | {name} | {100 * s['over90']:.1f} % | {s['median']:.1f} deg "
                f"| {s['mean']:.1f} deg | {by_group} |"
            )
    # Reference: a constant guess (always "faces the camera"), what a probe that sees nothing does.
    const = summary(heading_errors(np.tile([[-1.0, 0.0]], (len(truth), 1)), truth))
    lines.append(
        f"| (any) | constant 'faces the camera' | {100 * const['over90']:.1f} % | {const['median']:.1f} deg "
        f"| {const['mean']:.1f} deg | |"
    )
    fold_s = [float(r["seconds"]) for r in results]
    lines += [
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, {args.workers} worker processes. Rendering, noise "
        f"and preprocess_depth of both bodies: {render_s:.0f} s; probes: {probe_s:.0f} s "
        f"({len(results)} folds of ridge + CNN ({args.epochs} epochs), "
        f"{min(fold_s):.0f}..{max(fold_s):.0f} s each).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

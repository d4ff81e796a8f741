"""The whole training recipe in one command: data, stage 1, token cache, five stage-2 models, evaluation.

    python -m midas_ros.train.recipe --data data/mmfi_wide --out runs/wide --preset wide --seed 0 [--ship]

Resumable: a finished stage or model (`<out>/<name>/final.*`) is skipped on rerun, an interrupted one
restarts after its last finished epoch. Deterministic for a seed (same machine and torch build).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from midas_ros.mmfi.preprocessed import PreprocessedSet
from midas_ros.model import MidasConfig, resolve_device
from midas_ros.sim.presets import PRESETS as SIM_PRESETS
from midas_ros.sim.rigs import POOL_SIZE
from midas_ros.train import state
from midas_ros.train.data import build_token_cache, generate_dataset, load_preprocessed
from midas_ros.train.splits import SubjectSplit, split_subjects
from midas_ros.train.stage1 import Stage1Settings, train_stage1
from midas_ros.train.stage2 import VARIANTS, Stage2Settings, train_stage2

logger = logging.getLogger(__name__)
SHIP_DIR = Path("models")
SHIP_LIMIT_BYTES = 30 * 1024 * 1024


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a run (stored in <out>/recipe.json)."""

    model: MidasConfig
    stage1: Stage1Settings
    stage2: Stage2Settings
    variants: tuple[str, ...] = tuple(VARIANTS)
    num_test_subjects: int = 2
    val_fraction: float = 0.25
    # Never trained on, tested on (seen vs unseen slices): the last 6 of the simulator's 32 pool rigs,
    # and three actions without a mirrored twin among the others (mark time, picking up, jumping).
    held_out_rigs: tuple[int, ...] = tuple(range(POOL_SIZE - 6, POOL_SIZE))
    held_out_actions: tuple[int, ...] = (6, 19, 26)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict(),
            "stage1": asdict(self.stage1),
            "stage2": asdict(self.stage2),
            "variants": list(self.variants),
            "num_test_subjects": self.num_test_subjects,
            "val_fraction": self.val_fraction,
            "held_out_rigs": list(self.held_out_rigs),
            "held_out_actions": list(self.held_out_actions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Inverse of to_dict (e.g. <out>/recipe.json's "recipe")."""
        return cls(
            model=MidasConfig.from_dict(data["model"]),
            stage1=Stage1Settings(**data["stage1"]),
            stage2=Stage2Settings(**data["stage2"]),
            variants=tuple(data["variants"]),
            num_test_subjects=data["num_test_subjects"],
            val_fraction=data["val_fraction"],
            held_out_rigs=tuple(data.get("held_out_rigs", ())),
            held_out_actions=tuple(data.get("held_out_actions", ())),
        )


# Sizes chosen for a ~1 hour training run on a 2-core CPU (docs/training.md).
_SMALL = Recipe(
    model=MidasConfig(feature_dim=256, num_tokens=32, encoder_width=16, latent_channels=128, head_hidden=256),
    stage1=Stage1Settings(epochs=8, batch_size=32, lr=2e-3),
    stage2=Stage2Settings(epochs=6, batch_size=32, outer_every=8),
)
PRESETS: dict[str, Recipe] = {
    "small": _SMALL,
    # The shipped model: the papers' d = 512 on the simulator's "wide" data (40 subjects x 20 frames,
    # each sequence through one of 32 rigs). Eight test subjects (4,320 frames, every rig and action);
    # training subjects lose their frames of the 6 held-out rigs and 3 held-out actions.
    "wide": replace(_SMALL, model=replace(_SMALL.model, feature_dim=512), num_test_subjects=8),
    # Seconds, for tests and smoke runs of the tiny data set.
    "tiny": Recipe(
        model=MidasConfig(feature_dim=32, num_tokens=8, encoder_width=4, latent_channels=16, head_hidden=32),
        stage1=Stage1Settings(epochs=2, batch_size=16, lr=1e-3, warmup_steps=5),
        stage2=Stage2Settings(epochs=2, batch_size=16, outer_every=2, warmup_steps=5),
        num_test_subjects=1,  # the tiny simulator preset has three subjects
        val_fraction=0.5,
        held_out_rigs=(),  # too few frames to hold any out
        held_out_actions=(),
    ),
}


@dataclass
class RecipeResult:
    run_dir: Path
    split: SubjectSplit
    timings_s: dict[str, float] = field(default_factory=dict)


def run_recipe(
    data_root: Path,
    run_dir: Path,
    recipe: Recipe,
    seed: int = 0,
    device: str = "auto",
    evaluate: bool = True,
    eval_out: Path | None = None,
) -> RecipeResult:
    """Preprocess the data under data_root (cached in <run>/preprocessed.npz) and run the recipe on it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    data = load_preprocessed(data_root, run_dir / "preprocessed.npz")
    timings = {"data": time.perf_counter() - t}
    return run_recipe_on(data, run_dir, recipe, seed, device, evaluate, eval_out, str(data_root), timings)


def run_recipe_on(
    data: PreprocessedSet,
    run_dir: Path,
    recipe: Recipe,
    seed: int = 0,
    device: str | torch.device = "auto",
    evaluate: bool = True,
    eval_out: Path | None = None,
    data_name: str = "",
    timings: dict[str, float] | None = None,
) -> RecipeResult:
    """Run (or resume) every stage on preprocessed data; returns the split and the wall time of each stage
    run now (stages skipped as finished do not appear). `timings`: earlier stages' times to record too."""
    dev = resolve_device(device)
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe_path = run_dir / "recipe.json"
    if recipe_path.exists() and json.loads(recipe_path.read_text())["recipe"] != recipe.to_dict():
        raise ValueError(f"{run_dir} holds a run of a different recipe; use another --out")
    recipe_path.write_text(
        json.dumps({"recipe": recipe.to_dict(), "seed": seed, "data": data_name}, indent=2)
    )
    timings: dict[str, float] = {}

    split = split_subjects(
        data.subject,
        recipe.num_test_subjects,
        recipe.val_fraction,
        recipe.held_out_rigs,
        recipe.held_out_actions,
    )
    (run_dir / "split.json").write_text(json.dumps(split.to_dict(), indent=2))
    train_rows = split.rows(data, "inner_train")
    val_rows = split.rows(data, "outer_val")
    logger.info("data: %s; split %s", data.summary(), split)

    t = time.perf_counter()
    stage1_done = state.is_done(run_dir, "stage1")
    stage1 = train_stage1(data, train_rows, val_rows, recipe.model, recipe.stage1, run_dir, dev, seed)
    if not stage1_done:
        timings["stage1"] = time.perf_counter() - t

    todo = [name for name in recipe.variants if not state.is_done(run_dir, name)]
    if todo:
        # Stage 2 trains from the stage-1 encoders only, whether stage 1 ran now or earlier.
        stage1 = stage1.to(dev).eval()
        t = time.perf_counter()
        cache = build_token_cache(stage1, data, dev)
        timings["token_cache"] = time.perf_counter() - t
        for name in todo:
            t = time.perf_counter()
            train_stage2(
                name, stage1, cache, train_rows, val_rows, recipe.model, recipe.stage2, run_dir, dev, seed
            )
            timings[f"stage2_{name}"] = time.perf_counter() - t
        del cache

    if timings:
        _append_timings(run_dir, timings)
    if evaluate:
        from midas_ros.evaluate.cli import evaluate_run

        t = time.perf_counter()
        evaluate_run(data, run_dir, eval_out or run_dir / "eval", device=dev)
        timings["evaluate"] = time.perf_counter() - t
        _append_timings(run_dir, {"evaluate": timings["evaluate"]})
    return RecipeResult(run_dir, split, timings)


def _append_timings(run_dir: Path, timings: dict[str, float]) -> None:
    path = run_dir / "timings.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({"threads": torch.get_num_threads(), "seconds": {k: round(v, 1) for k, v in timings.items()}})
    path.write_text(json.dumps(runs, indent=2))


def ship(run_dir: Path, ship_dir: Path = SHIP_DIR) -> Path:
    """Copy the final MIDAS checkpoint to <ship_dir>/midas.{safetensors,json}; refuses files over 30 MB."""
    stem = state.final_stem(run_dir, "midas")
    src = stem.with_suffix(".safetensors")
    if not src.is_file():
        raise FileNotFoundError(f"no finished MIDAS model in {run_dir}")
    size = src.stat().st_size
    if size > SHIP_LIMIT_BYTES:
        raise ValueError(f"{src} is {size / 2**20:.1f} MiB, above the 30 MiB limit for models/")
    ship_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, ship_dir / "midas.safetensors")
    shutil.copyfile(stem.with_suffix(".json"), ship_dir / "midas.json")
    return ship_dir / "midas.safetensors"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="When --data does not exist, the simulator generates it first with --generate-preset "
        "(python -m midas_ros.sim.generate --preset wide, 21,600 frames). Stages: stage 1 (per-modality "
        "encoders), token cache, stage 2 (midas, wo_diff, wo_meta, base1, base2), evaluation "
        "(<out>/eval: the 7-subset table). See docs/training.md.",
    )
    parser.add_argument("--data", type=Path, default=Path("data/mmfi_wide"), help="MM-Fi style data folder")
    parser.add_argument("--out", type=Path, default=Path("runs/wide"), help="run folder (resumable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="wide", help="model size and epochs")
    parser.add_argument(
        "--generate-preset",
        choices=sorted(SIM_PRESETS),
        default="wide",
        help="simulator preset for --data",
    )
    parser.add_argument("--stage1-epochs", type=int, help="override the preset's stage-1 epochs")
    parser.add_argument("--stage2-epochs", type=int, help="override the preset's stage-2 epochs")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: the tensors are small, and a second OpenMP thread spin-waits "
        "badly whenever other processes share the cores; try 2 on an idle machine)",
    )
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
    parser.add_argument("--eval-out", type=Path, help="where the evaluation report goes (default <out>/eval)")
    parser.add_argument("--ship", action="store_true", help="copy the MIDAS checkpoint to models/midas.*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    recipe = PRESETS[args.preset]
    if args.stage1_epochs is not None:
        recipe = replace(recipe, stage1=replace(recipe.stage1, epochs=args.stage1_epochs))
    if args.stage2_epochs is not None:
        recipe = replace(recipe, stage2=replace(recipe.stage2, epochs=args.stage2_epochs))
    if not args.data.exists():
        generate_dataset(args.data, args.generate_preset, args.seed)
    result = run_recipe(args.data, args.out, recipe, args.seed, args.device, not args.no_eval, args.eval_out)
    print(json.dumps({"split": result.split.to_dict(), "seconds": result.timings_s}, indent=2))
    if args.ship:
        print(f"shipped {ship(args.out)}")


if __name__ == "__main__":
    main()

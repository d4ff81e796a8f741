"""What the diffusion refinement buys at inference: the same trained MIDAS weights scored with the
5-step refinement (the shipped behaviour, the papers' equation 10) and with it removed (the head on the
weighted sum of the unrefined projected features, which stage 2 also trains it on via the teacher loss).

    python benchmarks/refinement_ablation.py --run runs/wide

Prints a markdown table (MPJPE / PA-MPJPE, mm, the run's test subjects). Unlike "w/o Diff", no model is
retrained, so the difference is the refinement's effect on these weights alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from midas_ros.evaluate.predict import encode_all, predict_subsets, subset_errors
from midas_ros.mmfi.preprocessed import PreprocessedSet
from midas_ros.model import load_checkpoint
from midas_ros.train import state
from midas_ros.train.splits import load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/wide"), help="recipe run folder")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    data = PreprocessedSet.load(args.run / "preprocessed.npz")
    test = data.select_subjects(load_split(args.run).test)
    test = test.select(test.present.all(axis=1))
    model = load_checkpoint(state.final_stem(args.run, "midas"), device)
    tokens = encode_all(model, test, device)
    refined = subset_errors(predict_subsets(model, test, device, tokens=tokens), test.joints)
    model.refiner = None  # forward_from_tokens then applies the head to the unrefined weighted sum
    plain = subset_errors(predict_subsets(model, test, device, tokens=tokens), test.joints)
    print(f"Run {args.run}, {len(test)} test frames, MPJPE / PA-MPJPE (mm)\n")
    print("| subset | refined (shipped) | refinement removed | refined - removed (MPJPE) |")
    print("|---|---|---|---|")
    for label, r in refined.items():
        p = plain[label]
        print(
            f"| {label} | {r['mpjpe']:.1f} / {r['pa_mpjpe']:.1f} | {p['mpjpe']:.1f} / {p['pa_mpjpe']:.1f} "
            f"| {r['mpjpe'] - p['mpjpe']:+.1f} |"
        )


if __name__ == "__main__":
    main()

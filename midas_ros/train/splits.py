"""Splits: held-out test subjects, rigs and actions, and the training subjects' inner-train / outer-val.

Splits are by subject (never by frame) so that test and validation errors measure generalisation to new
people, and they do not depend on the training seed, so runs with different seeds share one test set.
Held-out rigs and actions never reach training (their frames of training subjects are left out); the
test subjects' frames keep every rig and action, so the evaluation can slice seen against unseen.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from midas_ros.mmfi.layout import environment_of


@dataclass(frozen=True)
class SubjectSplit:
    """Subject numbers of each part; the three parts are disjoint."""

    inner_train: tuple[int, ...]
    outer_val: tuple[int, ...]
    test: tuple[int, ...]
    held_out_rigs: tuple[int, ...] = ()  # rig ids (PreprocessedSet.rig) only the test set sees
    held_out_actions: tuple[int, ...] = ()  # actions only the test set sees

    def to_dict(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[int]]) -> SubjectSplit:
        return cls(**{k: tuple(int(x) for x in v) for k, v in data.items()})

    def indices(self, subjects: np.ndarray, part: str) -> np.ndarray:
        """Row indices of `subjects` (N,) that belong to `part` ('inner_train', 'outer_val', 'test')."""
        return np.flatnonzero(np.isin(subjects, getattr(self, part)))

    def rows(self, data: Any, part: str) -> np.ndarray:
        """Row indices of a PreprocessedSet in `part`: the part's subjects, and for the training parts
        without the held-out rigs and actions."""
        keep = np.isin(data.subject, getattr(self, part))
        if part != "test":
            keep &= ~np.isin(data.rig, self.held_out_rigs) & ~np.isin(data.action, self.held_out_actions)
        return np.flatnonzero(keep)


def load_split(run_dir: Path) -> SubjectSplit:
    """The split the recipe wrote to <run>/split.json (older files without held-out rigs and actions
    load with none held out)."""
    path = Path(run_dir) / "split.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a recipe run folder?")
    return SubjectSplit.from_dict(json.loads(path.read_text()))


def split_subjects(
    subjects: np.ndarray | list[int],
    num_test: int = 2,
    val_fraction: float = 0.25,
    held_out_rigs: tuple[int, ...] = (),
    held_out_actions: tuple[int, ...] = (),
) -> SubjectSplit:
    """Deterministic split of the subjects present in a dataset.

    Test: `num_test` subjects taken round-robin from different environments, environments with the most
    subjects first, so the test set spans rooms while every room keeps training subjects where possible.
    Outer validation: `val_fraction` of the remaining subjects (at least one), picked the same way.
    """
    unique = sorted({int(s) for s in np.asarray(subjects).ravel()})
    if len(unique) < num_test + 2:
        raise ValueError(f"need at least {num_test + 2} subjects for test/val/train, got {unique}")
    test = _spread_pick(unique, num_test)
    rest = [s for s in unique if s not in test]
    num_val = max(1, round(val_fraction * len(rest)))
    if num_val >= len(rest):
        raise ValueError(f"val_fraction {val_fraction} leaves no inner-training subject among {rest}")
    val = _spread_pick(rest, num_val)
    train = tuple(s for s in rest if s not in val)
    return SubjectSplit(
        inner_train=train,
        outer_val=tuple(sorted(val)),
        test=tuple(sorted(test)),
        held_out_rigs=tuple(sorted(held_out_rigs)),
        held_out_actions=tuple(sorted(held_out_actions)),
    )


def _spread_pick(subjects: list[int], count: int) -> tuple[int, ...]:
    """`count` subjects, one per environment in turn (most subjects first, then highest environment and
    highest subject number first)."""
    by_env: dict[int, list[int]] = {}
    for s in subjects:
        by_env.setdefault(environment_of(s), []).append(s)
    order = sorted(by_env, key=lambda env: (len(by_env[env]), env), reverse=True)
    queues = [sorted(by_env[env], reverse=True) for env in order]
    picked: list[int] = []
    while len(picked) < count:
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return tuple(picked)

"""MM-Fi frames on disk (real MM-Fi or the project's simulator output) as a lazy, indexable dataset.

The index is built once by listing each sequence's modality folders; files are read only when an item
is accessed. Frames are matched across modalities and to the ground truth by the NUMBER in their file
name, never by position in a folder listing, so a missing file never shifts later frames.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from midas_ros import MODALITIES
from midas_ros.mmfi import layout
from midas_ros.rig import Rig, read_rig

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "all")
SPLIT_SCHEMES = ("random", "cross_subject", "cross_environment")

_ENV_RE = re.compile(r"^E(\d{2})$")
_SUBJECT_RE = re.compile(r"^S(\d{2})$")
_ACTION_RE = re.compile(r"^A(\d{2})$")


@dataclass
class FrameRecord:
    """One frame: who, what, when, the ground truth and each modality's raw file content.

    raw["depth"]: (H, W) uint16 mm; raw["lidar"]: (N, 3) float64 m; raw["csi"]: (amplitude, phase),
    each (3, 114, 10) float64. A modality whose file is missing or empty is None.
    """

    subject: int
    action: int
    frame: int  # 1-based, as in the file names
    joints: np.ndarray  # (17, 3) float32 metres
    raw: dict[str, Any] = field(default_factory=dict)
    environment: int = 0
    rig: Rig | None = None  # the sequence's sensor rig (sidecar file; MMFI_RIG without one)


@dataclass(frozen=True)
class _Sequence:
    environment: int
    subject: int
    action: int
    seq_dir: Path
    num_gt_frames: int


_READERS = {
    "depth": layout.read_depth_png,
    "lidar": layout.read_lidar_bin,
    "csi": layout.read_csi_mat,
}


class MMFiDataset:
    """MM-Fi frames of one protocol and split, read lazily.

    root: folder holding E01..E04 (real MM-Fi or the simulator's output; any subset of subjects).
    modalities: which of MODALITIES to read; a frame is kept when at least one of them has a file.
    protocol: "P1" (daily actions), "P2" (rehabilitation), "P3" (all 27), or an explicit action list.
    split: "train", "val" or "all" (no split).
    split_scheme:
      "random"            MM-Fi toolbox style: per action, a permutation of the subjects seeded with
                          seed + action index; the first floor(train_ratio * n) train, the rest val.
                          Subjects are disjoint per action, not across actions.
      "cross_subject"     val_subjects held out for all actions (default: a seeded draw of
                          n - floor(train_ratio * n) subjects).
      "cross_environment" val_environment held out (default: the highest environment on disk).
    subjects: restrict the dataset to these subjects before splitting (None = all found on disk).
    """

    def __init__(
        self,
        root: Path | str,
        modalities: Sequence[str] = MODALITIES,
        protocol: str | Sequence[int] = "P3",
        split: str = "train",
        split_scheme: str = "random",
        seed: int = 0,
        train_ratio: float = 0.8,
        subjects: Sequence[int] | None = None,
        *,
        val_subjects: Sequence[int] | None = None,
        val_environment: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.modalities = _check_modalities(modalities)
        self.actions = _protocol_actions(protocol)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split_scheme not in SPLIT_SCHEMES:
            raise ValueError(f"split_scheme must be one of {SPLIT_SCHEMES}, got {split_scheme!r}")
        if not 0.0 < train_ratio < 1.0:
            raise ValueError(f"train_ratio must lie in (0, 1), got {train_ratio}")
        self.split = split
        self.split_scheme = split_scheme

        wanted = None if subjects is None else {int(s) for s in subjects}
        found = _discover_sequences(self.root, self.actions, wanted)
        self.available_subjects: tuple[int, ...] = tuple(sorted({s.subject for s in found}))
        self.sequences: list[_Sequence] = _select_split(
            found, split, split_scheme, seed, train_ratio, val_subjects, val_environment
        )
        self.subjects: tuple[int, ...] = tuple(sorted({s.subject for s in self.sequences}))
        self.skipped: Counter[str] = Counter()
        self._index: list[tuple[int, int, tuple[Path | None, ...]]] = []
        for seq_id, seq in enumerate(self.sequences):
            self._index_sequence(seq_id, seq)
        if self.skipped:
            logger.warning("%s: frames left out of the index: %s", self.root, dict(self.skipped))
        self._gt_cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._rigs: dict[int, Rig] = {}

    # --- index ------------------------------------------------------------------------------------

    def _index_sequence(self, seq_id: int, seq: _Sequence) -> None:
        per_modality: list[dict[int, Path | None]] = []
        for modality in self.modalities:
            folder = seq.seq_dir / layout.MODALITY_FOLDERS[modality]
            per_modality.append(_list_frames(folder, layout.MODALITY_SUFFIXES[modality]))
        numbers = sorted(set().union(*per_modality))
        beyond = [n for n in numbers if n > seq.num_gt_frames]
        if beyond:
            self.skipped["beyond_ground_truth"] += len(beyond)
            logger.warning(
                "%s: %d frame files numbered past the %d ground-truth frames (e.g. frame%03d) are ignored",
                seq.seq_dir,
                len(beyond),
                seq.num_gt_frames,
                beyond[0],
            )
        for number in range(1, seq.num_gt_frames + 1):
            paths = tuple(files.get(number) for files in per_modality)
            if all(p is None for p in paths):
                # Neither a file nor a usable (non-empty) one for any requested modality.
                self.skipped["no_modality"] += 1
                continue
            self._index.append((seq_id, number, paths))

    # --- access -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[FrameRecord]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> FrameRecord:
        seq_id, number, _ = self._entry(index)
        seq = self.sequences[seq_id]
        raw = {modality: self.read_raw(index, modality) for modality in self.modalities}
        return FrameRecord(
            seq.subject, seq.action, number, self.joints(index), raw, seq.environment, self.rig(index)
        )

    def _entry(self, index: int) -> tuple[int, int, tuple[Path | None, ...]]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        return self._index[index]

    def read_raw(self, index: int, modality: str) -> Any:
        """One modality's file content for an item (see FrameRecord.raw), None when missing or empty.

        A file that exists but cannot be parsed raises ValueError or OSError naming the file.
        """
        if modality not in self.modalities:
            raise KeyError(f"modality {modality!r} not loaded by this dataset (it reads {self.modalities})")
        _, _, paths = self._entry(index)
        path = paths[self.modalities.index(modality)]
        return None if path is None else _READERS[modality](path)

    def rig(self, index: int) -> Rig:
        """The sensor rig of an item's sequence: its sidecar file (midas_ros.rig), else MM-Fi's rig."""
        seq_id, _, _ = self._entry(index)
        rig = self._rigs.get(seq_id)
        if rig is None:
            rig = self._rigs[seq_id] = read_rig(self.sequences[seq_id].seq_dir)
        return rig

    def joints(self, index: int) -> np.ndarray:
        """(17, 3) float32 ground truth of an item, metres."""
        seq_id, number, _ = self._entry(index)
        return self._ground_truth(seq_id)[number - 1]

    def frame_info(self, index: int) -> tuple[int, int, int]:
        """(subject, action, frame) of an item without reading any file."""
        seq_id, number, _ = self._entry(index)
        seq = self.sequences[seq_id]
        return seq.subject, seq.action, number

    def has_file(self, index: int) -> dict[str, bool]:
        """Which requested modalities have a non-empty file for an item, without reading them."""
        _, _, paths = self._entry(index)
        return {m: p is not None for m, p in zip(self.modalities, paths, strict=True)}

    def _ground_truth(self, seq_id: int) -> np.ndarray:
        cached = self._gt_cache.get(seq_id)
        if cached is None:
            cached = layout.read_ground_truth(self.sequences[seq_id].seq_dir).astype(np.float32)
            self._gt_cache[seq_id] = cached
            if len(self._gt_cache) > 16:
                self._gt_cache.popitem(last=False)
        else:
            self._gt_cache.move_to_end(seq_id)
        return cached

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes rebuild their own ground-truth cache.
        state = self.__dict__.copy()
        state["_gt_cache"] = OrderedDict()
        return state

    def __repr__(self) -> str:
        return (
            f"MMFiDataset(root={str(self.root)!r}, modalities={self.modalities}, split={self.split!r}, "
            f"scheme={self.split_scheme!r}, subjects={list(self.subjects)}, sequences={len(self.sequences)}, "
            f"frames={len(self)})"
        )


# --- helpers ------------------------------------------------------------------------------------------


def _check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    if isinstance(modalities, str):
        modalities = (modalities,)
    chosen = tuple(dict.fromkeys(modalities))
    unknown = [m for m in chosen if m not in MODALITIES]
    if unknown or not chosen:
        raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {tuple(modalities)}")
    return chosen


def _protocol_actions(protocol: str | Sequence[int]) -> tuple[int, ...]:
    if isinstance(protocol, str):
        if protocol not in layout.PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(layout.PROTOCOLS)} or a list of actions")
        return layout.PROTOCOLS[protocol]
    actions = tuple(sorted({int(a) for a in protocol}))
    bad = [a for a in actions if not 1 <= a <= layout.NUM_ACTIONS]
    if bad or not actions:
        raise ValueError(f"actions must be 1..{layout.NUM_ACTIONS}, got {tuple(protocol)}")
    return actions


def _numbered_dirs(parent: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    found = []
    with os.scandir(parent) as entries:
        for entry in entries:
            match = pattern.match(entry.name)
            if match and entry.is_dir():
                found.append((int(match.group(1)), Path(entry.path)))
    return sorted(found)


def _discover_sequences(
    root: Path, actions: tuple[int, ...], subjects: set[int] | None = None
) -> list[_Sequence]:
    """All ROOT/Exx/Sxx/Axx folders of the wanted actions (and subjects: None = all), with their
    ground-truth length. Other subjects' folders are not opened, so one being written does not matter."""
    expected = "ROOT/E01..E04/Sxx/A01..A27/{depth,lidar,wifi-csi}/frameNNN.* + ground_truth.npy"
    if not root.is_dir():
        raise FileNotFoundError(f"MM-Fi root {root} is not a directory (expected {expected})")
    environments = _numbered_dirs(root, _ENV_RE)
    if not environments:
        hint = ""
        if _numbered_dirs(root, _SUBJECT_RE):
            hint = "; it holds Sxx folders, so pass its parent folder"
        elif _numbered_dirs(root, _ACTION_RE):
            hint = "; it holds Axx folders, so pass the folder two levels up"
        raise FileNotFoundError(f"no E01..E04 folders under {root} (expected {expected}){hint}")
    sequences: list[_Sequence] = []
    any_subject = False
    for env, env_dir in environments:
        for subject, subject_dir in _numbered_dirs(env_dir, _SUBJECT_RE):
            any_subject = True
            if subjects is not None and subject not in subjects:
                continue
            for action, seq_dir in _numbered_dirs(subject_dir, _ACTION_RE):
                if action not in actions:
                    continue
                gt_path = seq_dir / "ground_truth.npy"
                if not gt_path.is_file():
                    raise FileNotFoundError(f"{seq_dir}: no ground_truth.npy (expected {expected})")
                shape = np.load(gt_path, mmap_mode="r", allow_pickle=False).shape
                if len(shape) != 3 or shape[1:] != (17, 3):
                    raise ValueError(f"{gt_path}: expected (frames, 17, 3), got {shape}")
                sequences.append(_Sequence(env, subject, action, seq_dir, shape[0]))
    if not any_subject:
        raise FileNotFoundError(f"no Sxx subject folders under the E folders of {root} (expected {expected})")
    if subjects is not None and (missing := sorted(subjects - {s.subject for s in sequences})):
        raise ValueError(f"subjects {missing} not found under {root}")
    if not sequences:
        raise FileNotFoundError(f"no sequence of actions {list(actions)} under {root} (expected {expected})")
    return sequences


def _list_frames(folder: Path, suffix: str) -> dict[int, Path | None]:
    """frame number -> path for every frameNNN<suffix> in folder; zero-byte files map to None."""
    frames: dict[int, Path | None] = {}
    if not folder.is_dir():
        return frames
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.endswith(suffix):
                continue
            try:
                number = layout.frame_number(entry.name)
            except ValueError:
                continue  # not a frame file (e.g. editor or OS droppings)
            if number < 1:
                continue
            frames[number] = Path(entry.path) if entry.stat().st_size > 0 else None
    return frames


def _select_split(
    sequences: list[_Sequence],
    split: str,
    scheme: str,
    seed: int,
    train_ratio: float,
    val_subjects: Sequence[int] | None,
    val_environment: int | None,
) -> list[_Sequence]:
    if split == "all":
        return sequences
    subjects = sorted({s.subject for s in sequences})
    if scheme == "cross_environment":
        environments = sorted({s.environment for s in sequences})
        held_out = environments[-1] if val_environment is None else int(val_environment)
        if held_out not in environments:
            raise ValueError(
                f"val_environment E{held_out:02d} not among the environments found {environments}"
            )
        if len(environments) < 2:
            raise ValueError(f"cross_environment needs at least 2 environments, found {environments}")
        return [s for s in sequences if (s.environment == held_out) == (split == "val")]
    if len(subjects) < 2:
        raise ValueError(f"a train/val split needs at least 2 subjects, found {subjects}")
    num_train = min(max(1, int(np.floor(train_ratio * len(subjects)))), len(subjects) - 1)
    if scheme == "cross_subject":
        if val_subjects is None:
            rng = np.random.default_rng(seed)
            held = set(rng.choice(subjects, size=len(subjects) - num_train, replace=False).tolist())
        else:
            held = {int(s) for s in val_subjects}
            unknown = sorted(held - set(subjects))
            if unknown:
                raise ValueError(f"val_subjects {unknown} not found (subjects on disk: {subjects})")
            if held == set(subjects):
                raise ValueError("val_subjects holds every subject: nothing left to train on")
        return [s for s in sequences if (s.subject in held) == (split == "val")]
    # random: per action, its own seeded permutation of that action's subjects (MM-Fi toolbox style);
    # the seed is offset by the action number so a split does not depend on the protocol chosen.
    chosen = []
    for action in sorted({s.action for s in sequences}):
        of_action = [s for s in sequences if s.action == action]
        action_subjects = sorted({s.subject for s in of_action})
        count = min(max(1, int(np.floor(train_ratio * len(action_subjects)))), len(action_subjects) - 1)
        order = np.random.default_rng(seed + action).permutation(action_subjects)
        train = set(order[:count].tolist())
        chosen += [s for s in of_action if (s.subject in train) == (split == "train")]
    return sorted(chosen, key=lambda s: (s.environment, s.subject, s.action))

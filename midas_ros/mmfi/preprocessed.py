"""Model-ready arrays of a whole MM-Fi dataset, built once with the shared preprocessing and cached as .npz.

Storage: depth and csi are float16 (base-frame metres keep 2-4 mm steps out to 8 m; the CSI values are
z-scores and detrended phase of order 1), everything else float32/int. Cast batches to float32
(e.g. `torch.from_numpy(x).float()`) or use `inputs()`, which does it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from midas_ros import MODALITIES
from midas_ros.interfaces import INPUT_SHAPES
from midas_ros.mmfi.dataset import MMFiDataset
from midas_ros.preprocess import PreprocessError, preprocess_csi, preprocess_depth, preprocess_lidar

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2: base-frame inputs of the person alone, and the rig id; 3: depth as points
_STORAGE_DTYPES: dict[str, type] = {"depth": np.float16, "lidar": np.float32, "csi": np.float16}
_ARRAY_FIELDS = ("depth", "lidar", "csi", "present", "joints", "subject", "action", "frame", "rig")


@dataclass
class PreprocessedSet:
    """N preprocessed frames. present[:, i] says whether MODALITIES[i] holds real data for a frame;
    where it is False the modality's entry is zeros. stats counts missing files and rejections,
    keyed "<modality>:<reason>" (reasons: missing_file, unreadable, or a PreprocessError reason)."""

    depth: np.ndarray  # (N, 5120, 3) float16 metres, the person's visible surface in the base frame
    lidar: np.ndarray  # (N, 512, 3) float32 metres, the person's points in the base frame
    csi: np.ndarray  # (N, 6, 114, 10) float16
    present: np.ndarray  # (N, 3) bool, MODALITIES order
    joints: np.ndarray  # (N, 17, 3) float32 metres
    subject: np.ndarray  # (N,) int16
    action: np.ndarray  # (N,) int16
    frame: np.ndarray  # (N,) int16, 1-based
    rig: np.ndarray  # (N,) int16, the rig's id (Rig.id: pool index, -1 for other rigs such as MM-Fi's)
    stats: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.joints)
        expected = {
            "depth": (n, *INPUT_SHAPES["depth"]),
            "lidar": (n, *INPUT_SHAPES["lidar"]),
            "csi": (n, *INPUT_SHAPES["csi"]),
            "present": (n, len(MODALITIES)),
            "joints": (n, 17, 3),
            "subject": (n,),
            "action": (n,),
            "frame": (n,),
            "rig": (n,),
        }
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise ValueError(f"PreprocessedSet.{name} must be {shape}, got {actual}")

    def __len__(self) -> int:
        return len(self.joints)

    # --- subsets ----------------------------------------------------------------------------------

    def select(self, which: np.ndarray | Sequence[int]) -> PreprocessedSet:
        """A new set of the rows picked by a boolean mask (N,) or an index array (copies)."""
        which = np.asarray(which)
        if which.dtype == np.bool_ and which.shape != (len(self),):
            raise ValueError(f"mask must be ({len(self)},), got {which.shape}")
        arrays = {name: getattr(self, name)[which] for name in _ARRAY_FIELDS}
        return PreprocessedSet(**arrays, stats=dict(self.stats), source=self.source)

    def subject_mask(self, subjects: Iterable[int]) -> np.ndarray:
        """(N,) bool: frames of the given subjects."""
        return np.isin(self.subject, np.fromiter((int(s) for s in subjects), dtype=np.int64))

    def select_subjects(self, subjects: Iterable[int]) -> PreprocessedSet:
        return self.select(self.subject_mask(subjects))

    def action_mask(self, actions: Iterable[int]) -> np.ndarray:
        """(N,) bool: frames of the given actions (e.g. layout.PROTOCOLS["P1"])."""
        return np.isin(self.action, np.fromiter((int(a) for a in actions), dtype=np.int64))

    # --- access -----------------------------------------------------------------------------------

    def inputs(self, indices: np.ndarray | Sequence[int] | slice) -> dict[str, np.ndarray]:
        """Model inputs of some rows as float32: {modality: array} plus "present" (B, 3) bool."""
        batch = {m: getattr(self, m)[indices].astype(np.float32) for m in MODALITIES}
        batch["present"] = self.present[indices]
        return batch

    def summary(self) -> str:
        counts = ", ".join(f"{m} {int(c)}" for m, c in zip(MODALITIES, self.present.sum(axis=0), strict=True))
        subjects = sorted(int(s) for s in np.unique(self.subject))
        stats = dict(sorted(self.stats.items()))
        return f"{len(self)} frames, subjects {subjects}; present: {counts}; stats: {stats}"

    # --- build ------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        dataset: MMFiDataset,
        *,
        workers: int = 0,
        progress: bool = True,
        depth_kwargs: dict[str, Any] | None = None,
        lidar_kwargs: dict[str, Any] | None = None,
    ) -> PreprocessedSet:
        """Preprocess every frame of `dataset`.

        workers > 0 runs that many processes. A missing file or a rejected frame marks that modality
        absent for the frame (counted in stats); frames left with no modality at all are dropped
        (counted as "frame:no_usable_modality"). depth_kwargs / lidar_kwargs go to preprocess_depth /
        preprocess_lidar (e.g. a LidarROI for a rig other than the simulator's).
        """
        n = len(dataset)
        depth = np.zeros((n, *INPUT_SHAPES["depth"]), dtype=_STORAGE_DTYPES["depth"])
        lidar = np.zeros((n, *INPUT_SHAPES["lidar"]), dtype=_STORAGE_DTYPES["lidar"])
        csi = np.zeros((n, *INPUT_SHAPES["csi"]), dtype=_STORAGE_DTYPES["csi"])
        arrays = {"depth": depth, "lidar": lidar, "csi": csi}
        present = np.zeros((n, len(MODALITIES)), dtype=bool)
        joints = np.zeros((n, 17, 3), dtype=np.float32)
        info = np.array(
            [(*dataset.frame_info(i), dataset.rig(i).id) for i in range(n)], dtype=np.int16
        ).reshape(n, 4)
        stats: Counter[str] = Counter()
        options = (depth_kwargs or {}, lidar_kwargs or {})

        with tqdm(total=n, desc="preprocess", unit="frame", disable=not progress) as bar:
            for index, outputs, frame_joints, reasons in _run(dataset, options, workers):
                joints[index] = frame_joints
                for modality, value in outputs.items():
                    arrays[modality][index] = value
                    present[index, MODALITIES.index(modality)] = True
                stats.update(reasons)
                bar.update()

        keep = present.any(axis=1)
        if not keep.all():
            stats["frame:no_usable_modality"] += int((~keep).sum())
        result = cls(
            depth=depth[keep],
            lidar=lidar[keep],
            csi=csi[keep],
            present=present[keep],
            joints=joints[keep],
            subject=info[keep, 0],
            action=info[keep, 1],
            frame=info[keep, 2],
            rig=info[keep, 3],
            stats=dict(stats),
            source=repr(dataset),
        )
        if stats:
            logger.info("preprocessed %s", result.summary())
        return result

    # --- .npz cache -------------------------------------------------------------------------------

    def save(self, path: Path | str) -> Path:
        """Write an uncompressed .npz (no pickled objects); returns the path written."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.stats)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            **{name: getattr(self, name) for name in _ARRAY_FIELDS},
            stats_keys=np.array(keys, dtype=np.str_),
            stats_counts=np.array([self.stats[k] for k in keys], dtype=np.int64),
            source=np.array(self.source),
            modalities=np.array(MODALITIES),
            version=np.array(FORMAT_VERSION),
        )
        os.replace(tmp, path)  # never leave a half-written cache under the real name
        return path

    @classmethod
    def load(cls, path: Path | str) -> PreprocessedSet:
        """Read a set written by save()."""
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (*_ARRAY_FIELDS, "version", "modalities") if k not in archive.files]
            if missing:
                raise ValueError(f"{path}: not a PreprocessedSet archive (missing {missing})")
            if int(archive["version"]) != FORMAT_VERSION:
                raise ValueError(
                    f"{path}: format version {int(archive['version'])}, expected {FORMAT_VERSION}"
                )
            if tuple(archive["modalities"].tolist()) != MODALITIES:
                raise ValueError(
                    f"{path}: modalities {archive['modalities'].tolist()}, expected {MODALITIES}"
                )
            arrays = {name: archive[name] for name in _ARRAY_FIELDS}
            stats = dict(zip(archive["stats_keys"].tolist(), archive["stats_counts"].tolist(), strict=True))
            return cls(**arrays, stats=stats, source=str(archive["source"]))

    @classmethod
    def load_or_build(cls, path: Path | str, dataset: MMFiDataset, **build_kwargs: Any) -> PreprocessedSet:
        """The cached set at `path` if it was built from the same dataset, else build and save it."""
        path = Path(path)
        if path.exists():
            try:
                cached = cls.load(path)
            except ValueError as error:  # another format version
                logger.warning("%s: rebuilding (%s)", path, error)
            else:
                if cached.source == repr(dataset):
                    return cached
                logger.warning("%s was built from %s, not %r: rebuilding", path, cached.source, dataset)
        built = cls.build(dataset, **build_kwargs)
        built.save(path)
        return built


# --- per-frame work (module level so worker processes can run it) ----------------------------------

_worker_state: dict[str, Any] = {}


def _init_worker(dataset: MMFiDataset, options: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _worker_state["dataset"] = dataset
    _worker_state["options"] = options


def _process_one(index: int) -> tuple[int, dict[str, np.ndarray], np.ndarray, list[str]]:
    """Preprocess frame `index`: (index, {modality: array}, joints, reasons a modality is absent)."""
    dataset: MMFiDataset = _worker_state["dataset"]
    depth_kwargs, lidar_kwargs = _worker_state["options"]
    outputs: dict[str, np.ndarray] = {}
    reasons: list[str] = []
    for modality in dataset.modalities:
        try:
            raw = dataset.read_raw(index, modality)
        except (OSError, ValueError) as error:
            logger.warning("frame %s: cannot read %s: %s", dataset.frame_info(index), modality, error)
            reasons.append(f"{modality}:unreadable")
            continue
        if raw is None:
            reasons.append(f"{modality}:missing_file")
            continue
        try:
            rig = dataset.rig(index)
            if modality == "depth":
                value = preprocess_depth(raw, rig.depth_intrinsics, rig.depth_pose, **depth_kwargs)
            elif modality == "lidar":
                value = preprocess_lidar(raw, rig.lidar_pose, **lidar_kwargs)
            else:
                value = preprocess_csi(*raw)
        except PreprocessError as error:
            reasons.append(f"{modality}:{error.reason}")
            continue
        outputs[modality] = value.astype(_STORAGE_DTYPES[modality])
    return index, outputs, dataset.joints(index), reasons


def _run(
    dataset: MMFiDataset, options: tuple[dict[str, Any], dict[str, Any]], workers: int
) -> Iterator[tuple[int, dict[str, np.ndarray], np.ndarray, list[str]]]:
    n = len(dataset)
    if workers <= 0 or n < 2:
        _init_worker(dataset, options)
        try:
            for index in range(n):
                yield _process_one(index)
        finally:
            _worker_state.clear()
        return
    # spawn, not fork: open3d's OpenMP pool does not survive a fork. One thread per worker process so
    # N workers use N cores (children read OMP_NUM_THREADS when open3d loads).
    context = multiprocessing.get_context("spawn")
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        pool = context.Pool(workers, initializer=_init_worker, initargs=(dataset, options))
    finally:
        if previous is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    with pool:
        yield from pool.imap(_process_one, range(n), chunksize=max(1, min(64, n // (4 * workers))))

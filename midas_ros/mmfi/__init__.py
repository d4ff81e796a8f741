"""MM-Fi on disk: `layout` (file formats), `MMFiDataset` (lazy frames), `PreprocessedSet` (model arrays).

The classes are imported on first use so that `midas_ros.mmfi.layout` stays light (no open3d import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from midas_ros.mmfi.dataset import FrameRecord, MMFiDataset
    from midas_ros.mmfi.preprocessed import PreprocessedSet

__all__ = ["FrameRecord", "MMFiDataset", "PreprocessedSet"]


def __getattr__(name: str) -> Any:
    if name in ("FrameRecord", "MMFiDataset"):
        from midas_ros.mmfi import dataset

        return getattr(dataset, name)
    if name == "PreprocessedSet":
        from midas_ros.mmfi import preprocessed

        return preprocessed.PreprocessedSet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

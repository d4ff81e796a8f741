"""Find the person in a point cloud of the base frame, from the sensor data alone (no ground truth).

Depth and LiDAR both come here as points in the base frame (z up, floor at z = 0). The search keeps a
region of interest above the floor, clusters it (connected components of an occupancy grid, scipy.ndimage,
with cells twice as tall as wide so that a sparse 16-ring LiDAR's rings on one body still join) and
keeps the clusters whose shape could be a person: top between knee-high-squat and raised-arms height,
bottom near the floor, footprint no wider than outstretched arms, and not cut by the region's far or
side faces (then it is part of a wall or of something beyond: widen the region for people out there).
Among those it takes the one nearest the previous frame's person (a `PersonTrack`, when the caller
keeps one), else the nearest to the sensors, then the nearest to standing height. With no
candidate the frame is rejected (`PreprocessError("no_person")`), which the nodes count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from midas_ros.preprocess.common import PreprocessError


@dataclass(frozen=True)
class PersonSearch:
    """Where to look for a person (base frame, metres) and what a person's cluster looks like.

    The defaults cover people 0.3..5 m in front of the rig and up to 3 m to either side; walls and
    furniture outside that box cannot be mistaken for a person, and inside it they rarely pass the
    shape tests. Fit the box to the room for crowded scenes.
    """

    x_min: float = 0.3
    x_max: float = 5.0
    y_min: float = -3.0
    y_max: float = 3.0
    floor_m: float = 0.1  # points below this are floor (and floor noise); a body keeps its legs
    ceiling_m: float = 2.6
    cell_m: float = 0.1  # horizontal size of the clustering grid's cells
    vertical_weight: float = 0.5  # cells are cell_m / vertical_weight tall (sparse LiDAR rings join)
    min_cells: int = 6
    min_top_m: float = 0.9  # a squatting short person's head
    max_top_m: float = 2.55  # raised arms; walls reach the region's ceiling cut
    max_bottom_m: float = 0.8  # feet near the floor (jumps included)
    max_width_m: float = 2.1  # the longer side of the footprint: arm span, stride
    margin_m: float = 0.1  # around the chosen cluster's box
    track_radius_m: float = 1.0  # how far a person moves between frames that a track follows

    def __post_init__(self) -> None:
        if not (self.x_min < self.x_max and self.y_min < self.y_max and self.floor_m < self.ceiling_m):
            raise ValueError(f"PersonSearch: empty region {self}")
        if min(self.cell_m, self.vertical_weight) <= 0:
            raise ValueError("PersonSearch: cell_m and vertical_weight must be positive")

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: rows of (N, >=3) base-frame points inside the search region (NaN: outside)."""
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        inside = x >= self.x_min
        inside &= x <= self.x_max
        inside &= y >= self.y_min
        inside &= y <= self.y_max
        inside &= z >= self.floor_m
        inside &= z <= self.ceiling_m
        return inside


@dataclass(frozen=True)
class PersonBox:
    """The chosen person: an axis-aligned box in the base frame (with margin) and its centroid."""

    lo: np.ndarray
    hi: np.ndarray
    centroid: np.ndarray

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: rows of (N, >=3) base-frame points inside the box."""
        inside = np.ones(points.shape[0], dtype=bool)
        for axis in range(3):
            inside &= (points[:, axis] >= self.lo[axis]) & (points[:, axis] <= self.hi[axis])
        return inside


class PersonTrack:
    """The person's last centroid, for callers that see frames in order (the ROS adapters).

    Frames processed without a track (training, evaluation) each stand alone.
    """

    def __init__(self, max_age_s: float = 1.0) -> None:
        self.max_age_s = max_age_s
        self.centroid: np.ndarray | None = None
        self._stamp_s: float | None = None

    def near(self, stamp_s: float | None) -> np.ndarray | None:
        """The centroid to prefer at stamp_s, or None when there is none or it is too old."""
        if self.centroid is None or stamp_s is None or self._stamp_s is None:
            return self.centroid if stamp_s is None else None
        return self.centroid if abs(stamp_s - self._stamp_s) <= self.max_age_s else None

    def update(self, centroid: np.ndarray, stamp_s: float | None) -> None:
        self.centroid, self._stamp_s = np.asarray(centroid, dtype=np.float64), stamp_s


def find_person(
    points: np.ndarray, search: PersonSearch = PersonSearch(), near: np.ndarray | None = None
) -> PersonBox:
    """The person among base-frame points (N, 3): see the module docstring. Raises PreprocessError
    ("no_person") when no cluster passes the shape tests."""
    inside = points[search.contains(points)]
    if inside.shape[0] == 0:
        raise PreprocessError("no_person", f"no point in the person search region {search}")
    # Occupancy grid of the region; clusters are its 26-connected components, so objects with a gap
    # of more than about one cell between them (0.1 m across, 0.2 m up) stay apart.
    lo = np.array([search.x_min, search.y_min, search.floor_m])
    cell = np.array([search.cell_m, search.cell_m, search.cell_m / search.vertical_weight])
    shape = np.ceil((np.array([search.x_max, search.y_max, search.ceiling_m]) - lo) / cell).astype(int) + 1
    index = np.minimum(((inside - lo) / cell).astype(np.intp), shape - 1)
    grid = np.zeros(shape, dtype=bool)
    grid[index[:, 0], index[:, 1], index[:, 2]] = True
    labels, count = ndimage.label(grid, structure=np.ones((3, 3, 3), dtype=bool))
    # Exact extents of each cluster's points (the grid's cells are coarse).
    point_label = labels[index[:, 0], index[:, 1], index[:, 2]]
    order = np.argsort(point_label, kind="stable")
    sorted_points, sorted_labels = inside[order], point_label[order]
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_labels) != 0])
    cells_per_label = np.bincount(labels.ravel(), minlength=count + 1)
    best, best_cost = None, np.inf
    for start, stop in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        label = sorted_labels[start]
        if cells_per_label[label] < search.min_cells:
            continue
        member = sorted_points[start:stop]
        first, last = member.min(axis=0), member.max(axis=0)
        width = float(np.max(last[:2] - first[:2]))  # the longer side of the footprint
        top, bottom = float(last[2]), float(first[2])
        if not (search.min_top_m <= top <= search.max_top_m and bottom <= search.max_bottom_m):
            continue
        if width > search.max_width_m:
            continue
        edge = search.cell_m / 2  # cut by the region's far or side faces: part of something larger
        if (
            last[0] >= search.x_max - edge
            or first[1] <= search.y_min + edge
            or last[1] >= search.y_max - edge
        ):
            continue
        centroid = member.mean(axis=0)
        if near is not None and np.hypot(*(centroid[:2] - near[:2])) <= search.track_radius_m:
            cost = -10.0 + float(np.hypot(*(centroid[:2] - near[:2])))  # a tracked candidate beats all
        else:
            # nearness first (people near a robot are the ones it serves), then a standing height
            cost = float(np.hypot(*centroid[:2])) / 2 + abs(top - 1.6) / 2 + max(0.0, width - 1.2) / 2
        if cost < best_cost:
            best, best_cost = (first, last, centroid), cost
    if best is None:
        raise PreprocessError(
            "no_person", f"none of {count} clusters in the person search region is shaped like a person"
        )
    first, last, centroid = best
    return PersonBox(first - search.margin_m, last + search.margin_m, centroid)

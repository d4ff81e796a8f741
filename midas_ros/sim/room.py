"""The four rooms (MM-Fi environments E01..E04): walls, floor, ceiling, furniture, and their mesh.

Room frame as docs/design.md: origin on the floor below the sensor rig, x into the room, y left, z up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[tuple[float, float, float], tuple[float, float, float]]  # (min corner, max corner)


@dataclass(frozen=True)
class Room:
    """An axis-aligned room with box-shaped furniture, and how strongly its surfaces reflect WiFi."""

    name: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    height: float
    furniture: tuple[Box, ...]
    # amplitude reflection coefficients at 5 GHz: floor, ceiling, back (x min), front (x max), right, left
    reflectivity: tuple[float, float, float, float, float, float]


# Sizes and furnishing differ per environment (MM-Fi's four scenes); none blocks the sensing area
# (x 2.2..4 m, |y| < 1 m) or the WiFi transmitter and receiver at y = +-2.4 m.
ROOMS: dict[int, Room] = {
    1: Room(
        "E01 office",
        (-0.6, 6.0),
        (-2.8, 3.0),
        2.8,
        (((4.8, 1.6, 0.0), (5.6, 2.6, 0.75)), ((5.5, -2.5, 0.0), (5.95, -1.5, 1.9))),
        (0.45, 0.35, 0.4, 0.4, 0.5, 0.3),
    ),
    2: Room(
        "E02 living room",
        (-0.8, 7.5),
        (-3.5, 3.2),
        3.0,
        (
            ((5.6, -2.0, 0.0), (6.4, 0.5, 0.8)),
            ((6.9, 1.0, 0.0), (7.4, 2.5, 2.0)),
            ((1.0, 2.5, 0.0), (1.8, 3.15, 0.75)),
        ),
        (0.3, 0.3, 0.45, 0.35, 0.3, 0.4),
    ),
    3: Room(
        "E03 lab",
        (-0.5, 5.4),
        (-2.6, 2.6),
        2.6,
        (((4.9, -1.2, 0.0), (5.35, 0.8, 1.6)), ((4.2, 1.6, 0.0), (4.7, 2.3, 1.0))),
        (0.5, 0.45, 0.55, 0.6, 0.5, 0.5),
    ),
    4: Room(
        "E04 hall",
        (-1.0, 8.5),
        (-4.0, 4.0),
        3.4,
        (
            ((6.5, -0.2, 0.0), (6.9, 0.2, 3.4)),
            ((4.6, -3.6, 0.0), (5.4, -2.8, 0.75)),
            ((5.0, 2.8, 0.0), (6.0, 3.8, 0.75)),
        ),
        (0.35, 0.25, 0.3, 0.3, 0.35, 0.35),
    ),
}


def room_of(environment: int) -> Room:
    """The room of an MM-Fi environment number (1..4)."""
    if environment not in ROOMS:
        raise ValueError(f"environment must be 1..4, got {environment}")
    return ROOMS[environment]


_BOX_TRIS = np.array(
    [
        (0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5),  # x min, x max
        (0, 4, 5), (0, 5, 1), (2, 3, 7), (2, 7, 6),  # y min, y max
        (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3),  # z min, z max
    ],
    dtype=np.int64,
)  # fmt: skip


def _box(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 8 corners of a box, index bits (x, y, z) = (4, 2, 1)."""
    return np.array(
        [[(hi if i & 4 else lo)[0], (hi if i & 2 else lo)[1], (hi if i & 1 else lo)[2]] for i in range(8)]
    )


def room_mesh(room: Room) -> tuple[np.ndarray, np.ndarray]:
    """Triangles of the room shell (floor, ceiling, four walls) and furniture: (vertices float32, triangles
    uint32). Ray casting does not care about facing, so the shell is just a box seen from inside."""
    boxes = [((room.x_range[0], room.y_range[0], 0.0), (room.x_range[1], room.y_range[1], room.height))]
    boxes += list(room.furniture)
    verts, tris = [], []
    for i, (lo, hi) in enumerate(boxes):
        verts.append(_box(np.array(lo), np.array(hi)))
        tris.append(_BOX_TRIS + 8 * i)
    return np.concatenate(verts).astype(np.float32), np.concatenate(tris).astype(np.uint32)

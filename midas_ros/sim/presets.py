"""Simulator presets (subjects, actions, frames per sequence), apart from the simulator so that the
training CLI can list them without importing open3d."""

from __future__ import annotations

from midas_ros.mmfi import layout

PRESETS: dict[str, dict[str, tuple[int, ...] | int]] = {
    "tiny": {"subjects": (1, 11, 21), "actions": (1, 12, 27), "frames": 10},
    "small": {
        "subjects": (1, 2, 3, 11, 12, 13, 21, 22, 31, 32),
        "actions": tuple(range(1, layout.NUM_ACTIONS + 1)),
        "frames": 60,
    },
    # All 40 subjects, 20 frames a sequence (21,600 frames): more people, fewer frames each. 20, not
    # 15: the recipe holds 6 of the 32 rigs and 3 actions out of training.
    "wide": {
        "subjects": tuple(range(1, layout.NUM_SUBJECTS + 1)),
        "actions": tuple(range(1, layout.NUM_ACTIONS + 1)),
        "frames": 20,
    },
    "full": {
        "subjects": tuple(range(1, layout.NUM_SUBJECTS + 1)),
        "actions": tuple(range(1, layout.NUM_ACTIONS + 1)),
        "frames": layout.FRAMES_PER_SEQUENCE,
    },
}

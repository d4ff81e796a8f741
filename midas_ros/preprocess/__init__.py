"""Per-modality preprocessing shared by the simulator's writer, training, evaluation and the ROS adapters.

Each function turns one raw sensor frame into the fixed-shape array the model takes, or raises
`PreprocessError` (with a short `.reason` slug that nodes count) for input it cannot use. Depth and
LiDAR come out in the base frame (midas_ros.rig) holding only the person, found from the sensor data
alone (preprocess.person); nothing here ever sees ground truth.
"""

from midas_ros.preprocess.common import PreprocessError
from midas_ros.preprocess.csi import preprocess_csi
from midas_ros.preprocess.depth import preprocess_depth
from midas_ros.preprocess.lidar import crop_person, preprocess_lidar
from midas_ros.preprocess.person import PersonSearch, PersonTrack, find_person

__all__ = [
    "PersonSearch",
    "PersonTrack",
    "PreprocessError",
    "crop_person",
    "find_person",
    "preprocess_csi",
    "preprocess_depth",
    "preprocess_lidar",
]

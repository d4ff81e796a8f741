"""ament_python build of midas_ros: works with `colcon build` and with `pip install .`."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "midas_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/models", glob("models/*.safetensors") + glob("models/*.json")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="midas_ros developers",
    maintainer_email="midas-ros@example.com",
    description="MIDAS multimodal 3D human pose under sensor failure, as a ROS 2 package",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "depth_adapter = midas_ros.ros.depth_adapter:main",
            "lidar_adapter = midas_ros.ros.lidar_adapter:main",
            "csi_adapter = midas_ros.ros.csi_adapter:main",
            "csi_capture = midas_ros.ros.csi_capture_node:main",
            "fusion_node = midas_ros.ros.fusion_node:main",
            "bag_player = midas_ros.ros.bag_player:main",
            "bringup = midas_ros.ros.bringup:main",
            "midas_demo = midas_ros.demo.run:main",
            "midas_generate = midas_ros.sim.generate:main",
            "midas_train = midas_ros.train.recipe:main",
            "midas_evaluate = midas_ros.evaluate.cli:main",
            "midas_replay = midas_ros.replay.cli:main",
        ],
    },
)

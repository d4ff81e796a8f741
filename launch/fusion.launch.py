"""Launch midas_ros on a ROS 2 install: the three adapters and the fusion node (+ bag player, RViz).

    ros2 launch midas_ros fusion.launch.py                       # one process per node
    ros2 launch midas_ros fusion.launch.py composed:=true        # all nodes in one process (bringup)
    ros2 launch midas_ros fusion.launch.py bag:=out/demo/demo_bag use_sim_time:=true rviz:=true
    ros2 launch midas_ros fusion.launch.py depth_topic:=/my_cam/depth/image_rect_raw \
        depth_camera_info_topic:=/my_cam/depth/camera_info device:=cpu

Parameters come from config/adapters.yaml (adapters: sensor poses, person search region, ...) and
config/midas.yaml (fusion node, bag player); the arguments below override a few of them. The nodes' topic
names are relative (midas_ros/interfaces.py); the sensor inputs and the depth camera's CameraInfo are
remapped to the *_topic arguments, which default to the drivers' own topics.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from midas_ros.interfaces import DEPTH_CAMERA_INFO_TOPIC, SENSOR_TOPICS

PACKAGE = "midas_ros"
# One launch argument per sensor input, named after the modality; the nodes' relative topic names
# (midas_ros/interfaces.py) are remapped to them. Their defaults are the drivers' own topics.
TOPIC_ARGUMENTS = {"depth": "depth_topic", "lidar": "lidar_topic", "csi": "csi_topic"}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    adapters_yaml = PathJoinSubstitution([share, "config", "adapters.yaml"])
    midas_yaml = PathJoinSubstitution([share, "config", "midas.yaml"])
    rviz_config = PathJoinSubstitution([share, "config", "midas.rviz"])

    arguments = [
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="follow /clock (bag replay)"
        ),
        DeclareLaunchArgument(
            "device", default_value="auto", description="inference device: auto, cuda, cpu"
        ),
        DeclareLaunchArgument(
            "checkpoint", default_value="", description="MIDAS checkpoint; empty = the package's models/"
        ),
        DeclareLaunchArgument(
            "composed", default_value="false", description="true: all nodes in one process (bringup)"
        ),
        DeclareLaunchArgument("bag", default_value="", description="MCAP bag to play (empty = live sensors)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="bag playback speed factor"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/midas.rviz"),
        *[
            DeclareLaunchArgument(
                argument, default_value=f"/{SENSOR_TOPICS[m]}", description=f"{m} input topic of your driver"
            )
            for m, argument in TOPIC_ARGUMENTS.items()
        ],
        DeclareLaunchArgument(
            "depth_camera_info_topic",
            default_value=f"/{DEPTH_CAMERA_INFO_TOPIC}",
            description="sensor_msgs/CameraInfo of the depth images (their intrinsics)",
        ),
    ]
    use_sim_time = LaunchConfiguration("use_sim_time")
    device = LaunchConfiguration("device")
    checkpoint = LaunchConfiguration("checkpoint")
    composed = LaunchConfiguration("composed")
    bag = LaunchConfiguration("bag")
    rate = LaunchConfiguration("rate")
    remappings = [(SENSOR_TOPICS[m], LaunchConfiguration(a)) for m, a in TOPIC_ARGUMENTS.items()]
    remappings.append((DEPTH_CAMERA_INFO_TOPIC, LaunchConfiguration("depth_camera_info_topic")))
    sim_time = {"use_sim_time": PythonExpression(["'", use_sim_time, "'.lower() == 'true'"])}
    separate = UnlessCondition(composed)

    adapters = [
        Node(
            package=PACKAGE,
            executable=executable,
            name=executable,
            parameters=[adapters_yaml, sim_time],
            remappings=remappings,
            output="screen",
            condition=separate,
        )
        for executable in ("depth_adapter", "lidar_adapter", "csi_adapter")
    ]
    fusion = Node(
        package=PACKAGE,
        executable="fusion_node",
        name="fusion_node",
        parameters=[midas_yaml, sim_time, {"device": device, "checkpoint": checkpoint}],
        output="screen",
        condition=separate,
    )
    player = Node(
        package=PACKAGE,
        executable="bag_player",
        name="bag_player",
        parameters=[midas_yaml, {"bag": bag, "rate": PythonExpression(["float(", rate, ")"])}],
        remappings=remappings,
        output="screen",
        condition=IfCondition(PythonExpression(["'", bag, "' != '' and '", composed, "'.lower() != 'true'"])),
    )
    # One process for everything; no `name` here: it would rename every node in that process.
    bringup = Node(
        package=PACKAGE,
        executable="bringup",
        arguments=[
            "--use-sim-time",
            use_sim_time,
            "--device",
            device,
            "--checkpoint",
            checkpoint,
            "--bag",
            bag,
            "--rate",
            rate,
        ],
        remappings=remappings,
        output="screen",
        condition=IfCondition(composed),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", rviz_config],
        parameters=[sim_time],
        output="log",
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, *adapters, fusion, player, bringup, rviz])

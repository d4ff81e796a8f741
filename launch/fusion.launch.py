"""Launch midas_ros on a ROS 2 install: the three adapters and the fusion node (+ bag player, RViz).

    ros2 launch midas_ros fusion.launch.py                       # one process per node
    ros2 launch midas_ros fusion.launch.py composed:=true        # all nodes in one process (bringup)
    ros2 launch midas_ros fusion.launch.py bag:=out/demo/demo_bag use_sim_time:=true rviz:=true
    ros2 launch midas_ros fusion.launch.py depth_topic:=/my_cam/depth/image_raw device:=cpu

Parameters come from config/adapters.yaml (adapters) and config/midas.yaml (fusion node, bag player);
the arguments below override a few of them. Sensor topics are remapped from the adapters' defaults.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "midas_ros"
# The adapters' default input topics (midas_ros/ros/*_adapter.py), remapped to the launch arguments.
DEFAULT_TOPICS = {
    "depth_topic": "/camera/camera/depth/image_rect_raw",
    "lidar_topic": "/ouster/points",
    "csi_topic": "/wifi/csi",
}


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
        DeclareLaunchArgument(
            "depth_topic", default_value=DEFAULT_TOPICS["depth_topic"], description="depth Image input topic"
        ),
        DeclareLaunchArgument(
            "lidar_topic", default_value=DEFAULT_TOPICS["lidar_topic"], description="LiDAR PointCloud2 topic"
        ),
        DeclareLaunchArgument(
            "csi_topic", default_value=DEFAULT_TOPICS["csi_topic"], description="CSI PointCloud2 input topic"
        ),
    ]
    use_sim_time = LaunchConfiguration("use_sim_time")
    device = LaunchConfiguration("device")
    checkpoint = LaunchConfiguration("checkpoint")
    composed = LaunchConfiguration("composed")
    bag = LaunchConfiguration("bag")
    rate = LaunchConfiguration("rate")
    remappings = [
        (DEFAULT_TOPICS["depth_topic"], LaunchConfiguration("depth_topic")),
        (DEFAULT_TOPICS["lidar_topic"], LaunchConfiguration("lidar_topic")),
        (DEFAULT_TOPICS["csi_topic"], LaunchConfiguration("csi_topic")),
    ]
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

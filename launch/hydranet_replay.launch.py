"""ros2 launch hydranet_ros hydranet_replay.launch.py [params_file:=...] [namespace:=...] [rviz:=true]

Starts hydranet_node to process a recorded bag: mode replay (every frame, in order, reliable input) and
use_sim_time true, whatever the parameter file says. It plays no bag itself; in a second terminal run
`ros2 bag play --clock BAG` (--clock publishes /clock, which use_sim_time needs), or `hydranet replay BAG`.
For a JPEG camera bag (the shipped sample, hydranet demo's recordings) pass
params_file:=<share>/config/hydranet_compressed.yaml. rviz:=true also opens RViz on sim time.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("hydranet_ros")
    default_params = PathJoinSubstitution([share, "config", "hydranet.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="parameter file, applied over the package's config/hydranet.yaml "
                                          "(its mode and use_sim_time are overridden)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="true: also start rviz2, on sim time, with config/hydranet.rviz"),
        Node(
            package="hydranet_ros",
            executable="hydranet_node",
            name="hydranet",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), {"mode": "replay", "use_sim_time": True}],
            output="screen",
            emulate_tty=True,
        ),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", PathJoinSubstitution([share, "config", "hydranet.rviz"])],
            parameters=[{"use_sim_time": True}],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="screen",
        ),
    ])

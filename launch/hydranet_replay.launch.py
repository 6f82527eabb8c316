"""ros2 launch hydranet_ros hydranet_replay.launch.py [params_file:=...] [namespace:=...]

Starts hydranet_node to process a recorded bag: mode replay (every frame, in order, reliable input) and
use_sim_time true, whatever the parameter file says. It plays no bag itself; in a second terminal run
`ros2 bag play --clock BAG` (--clock publishes /clock, which use_sim_time needs), or `hydranet replay BAG`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare("hydranet_ros"), "config", "hydranet.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="parameter file, applied over the package's config/hydranet.yaml "
                                          "(its mode and use_sim_time are overridden)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        Node(
            package="hydranet_ros",
            executable="hydranet_node",
            name="hydranet",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), {"mode": "replay", "use_sim_time": True}],
            output="screen",
            emulate_tty=True,
        ),
    ])

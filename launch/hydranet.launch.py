"""ros2 launch hydranet_ros hydranet.launch.py [params_file:=...] [use_sim_time:=true] [namespace:=...]

Starts hydranet_node with config/hydranet.yaml (or your own parameter file, applied over it).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare("hydranet_ros"), "config", "hydranet.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="parameter file, applied over the package's config/hydranet.yaml"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true when replaying a bag that publishes /clock"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        Node(
            package="hydranet_ros",
            executable="hydranet_node",
            name="hydranet",
            namespace=LaunchConfiguration("namespace"),
            parameters=[
                LaunchConfiguration("params_file"),
                {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)},
            ],
            output="screen",
            emulate_tty=True,
        ),
    ])

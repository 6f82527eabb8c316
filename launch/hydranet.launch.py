"""ros2 launch hydranet_ros hydranet.launch.py [params_file:=...] [use_sim_time:=true] [namespace:=...] [rviz:=true]

Starts hydranet_node (one camera, `front`, by default) with config/hydranet.yaml, or with your own parameter
file applied over it. rviz:=true also opens RViz with config/hydranet.rviz (the front camera's outputs).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("hydranet_ros")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "hydranet.yaml"]),
                              description="parameter file, applied over the package's config/hydranet.yaml"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true when replaying a bag that publishes /clock"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="true: also start rviz2 with the package's config/hydranet.rviz"),
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
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", PathJoinSubstitution([share, "config", "hydranet.rviz"])],
            parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="screen",
        ),
    ])

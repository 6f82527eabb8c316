"""ros2 launch hydranet_ros hydranet_multi_camera.launch.py [params_file:=...] [use_sim_time:=true] [namespace:=...]

Starts hydranet_node for three cameras (front, left, right) with config/hydranet_multi_camera.yaml, applied over
config/hydranet.yaml. All cameras share one node, so one model instance: their latest frames are batched into one
inference pass. Outputs are per camera, e.g. /hydranet/left/detections.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare("hydranet_ros"), "config", "hydranet_multi_camera.yaml"])
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

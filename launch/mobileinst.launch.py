"""`ros2 launch mobileinst_ros mobileinst.launch.py [namespace:=robot1] [image_topic:=/camera/image_raw]
[params_file:=my.yaml] [model_path:=/path/to/model] [overlay:=false] [depth_fusion:=true]
[depth_topic:=/camera/aligned_depth_to_color/image_raw] [depth_info_topic:=/camera/aligned_depth_to_color/camera_info]`

Starts mobileinst_node, which configures and activates itself (parameter `autostart`); its instances
come out on <namespace>/mobileinst/instances (and with depth_fusion, RViz markers on
<namespace>/mobileinst/markers). `model_path`, `overlay` and `depth_fusion` set the parameters
model_path, publish_overlay and depth_fusion unless params_file sets them (the shipped
config/mobileinst.yaml leaves them to the arguments).
Sets FASTDDS_DEFAULT_PROFILES_FILE to the package's profile (16 MiB shared-memory segments for camera
images) unless it is already set.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("mobileinst_ros")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="Camera image topic (with input_transport compressed: "
                                          "<image_topic>/compressed is read)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "mobileinst.yaml"]),
                              description="Parameter file of the node"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Exported model directory; empty: the shipped model"),
        DeclareLaunchArgument("overlay", default_value="true",
                              description="Offer the debug overlay image (drawn only while subscribed)"),
        DeclareLaunchArgument("depth_fusion", default_value="false",
                              description="Give each instance a 3D position from an aligned depth image"),
        DeclareLaunchArgument("depth_topic", default_value="/camera/aligned_depth_to_color/image_raw",
                              description="Depth image registered to the colour image (16UC1 mm or 32FC1 m)"),
        DeclareLaunchArgument("depth_info_topic", default_value="/camera/aligned_depth_to_color/camera_info",
                              description="CameraInfo of the depth image"),
        SetEnvironmentVariable(
            "FASTDDS_DEFAULT_PROFILES_FILE",
            EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                                default_value=PathJoinSubstitution([share, "config", "fastdds_profile.xml"]))),
        LifecycleNode(
            package="mobileinst_ros",
            executable="mobileinst_node",
            name="mobileinst",
            namespace=LaunchConfiguration("namespace"),
            # Later entries win: a value set in params_file beats the model_path / overlay arguments.
            parameters=[{"model_path": ParameterValue(LaunchConfiguration("model_path"), value_type=str),
                         "publish_overlay": ParameterValue(LaunchConfiguration("overlay"), value_type=bool),
                         "depth_fusion": ParameterValue(LaunchConfiguration("depth_fusion"), value_type=bool)},
                        LaunchConfiguration("params_file")],
            # The node reads <image>/compressed for compressed input, so one remapping serves both.
            remappings=[("image", LaunchConfiguration("image_topic")),
                        ("depth/image", LaunchConfiguration("depth_topic")),
                        ("depth/camera_info", LaunchConfiguration("depth_info_topic"))],
            output="screen",
        ),
    ])

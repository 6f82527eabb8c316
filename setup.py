"""ament_python package hydranet_ros (also pip-installable: pip install -e .)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "hydranet_ros"


def files(pattern: str) -> list[str]:
    return sorted(f for f in glob(pattern, recursive=True) if not f.endswith("/"))


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    package_data={package_name: ["samples/*", "samples/**/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", files("launch/*.py")),
        (f"share/{package_name}/config", files("config/*.yaml") + files("config/*.xml") + files("config/*.rviz")),
        (f"share/{package_name}/config/models", files("config/models/*.yaml")),
        (f"share/{package_name}/models",
         files("models/*.onnx") + files("models/*.safetensors") + files("models/*.yaml")),
    ],
    # Runtime dependencies come from rosdep (package.xml) on a vehicle and from pip_env/ elsewhere:
    # declaring them here would make colcon/pip fetch a second copy of numpy/opencv/torch.
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="hydranet_ros maintainers",
    maintainer_email="hydranet@example.com",
    description="One-pass multi-task HydraNet camera perception node for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hydranet = hydranet_ros.tools.cli:main",
            "hydranet_node = hydranet_ros.ros.node:main",
        ],
    },
)

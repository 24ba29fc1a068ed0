from setuptools import find_packages, setup

package_name = "expo_franka"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="EXPO stack maintainers",
    maintainer_email="maintainers@expo-stack.dev",
    description="EXPO hardware side: Franka adapter, arm safety, episode manager, gripper I/O, teleop.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "franka_adapter_node = expo_franka.franka_adapter_node:main",
            "episode_manager_node = expo_franka.episode_manager_node:main",
            "teleop_node = expo_franka.teleop_node:main",
            "keyboard_teleop = expo_franka.keyboard_teleop:main",
        ]
    },
)

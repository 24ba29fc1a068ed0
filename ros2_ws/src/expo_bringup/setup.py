from glob import glob

from setuptools import find_packages, setup

package_name = "expo_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", glob("expo_bringup/config/*")),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
    ],
    package_data={package_name: ["config/*.yaml", "config/*.rviz"]},
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="EXPO stack maintainers",
    maintainer_email="maintainers@expo-stack.dev",
    description="EXPO launch files, parameter YAML, the node graph as data and its launch mapping.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "foxglove_bridge = expo_bringup.foxglove_bridge:main",
        ]
    },
)

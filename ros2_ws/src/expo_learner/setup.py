from setuptools import find_packages, setup

package_name = "expo_learner"

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
    description="EXPO asynchronous learner node (replay intake, training, weight publishing).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "expo-data = expo_learner.data_cli:main",
            "learner_node = expo_learner.start:main",
        ]
    },
)

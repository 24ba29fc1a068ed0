from setuptools import find_packages, setup

package_name = "expo_policy"

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
    description="EXPO real-time policy lifecycle node: observations, inference backends, safety.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_node = expo_policy.policy_node:main",
        ]
    },
)

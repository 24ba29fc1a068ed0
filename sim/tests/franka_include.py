"""The installed ``franka.launch.py`` included with launch arguments on one ROS domain, ready for
launch_pytest: the body of the Franka launch tests' launch fixtures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def franka_launch_description(arguments: Mapping[str, str], domain_id: int, bridge_params: str) -> Any:
    """A LaunchDescription: ROS_DOMAIN_ID, ``franka.launch.py`` with ``arguments``, then
    launch_pytest's ReadyToTest. ``bridge_params`` (YAML lines, indented under
    ``ros__parameters``) are written as ``sim_bridge``'s to ``arguments['params_file']``."""
    import launch_pytest
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    Path(arguments["params_file"]).write_text(f"sim_bridge:\n  ros__parameters:\n{bridge_params}")
    path = Path(get_package_share_directory("expo_bringup")) / "launch" / "franka.launch.py"
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(path)), launch_arguments=arguments.items()
    )
    return LaunchDescription(
        [
            SetEnvironmentVariable("ROS_DOMAIN_ID", str(domain_id)),
            include,
            launch_pytest.actions.ReadyToTest(),
        ]
    )

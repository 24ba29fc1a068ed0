"""The hardware side: what stands between the policy's commands and a Franka driven by franka_ros2.

- :mod:`.franka_adapter_node`: ActionCommand -> equilibrium pose + gripper (the adapter node).
- :mod:`.arm_safety`: the arm safety filter (workspace box, step limits, e-stop hold).
- :mod:`.episode_manager_node`, :mod:`.episode_manager`: real episodes (start, success, failure).
- :mod:`.franka_gripper_io`: gripper commands through franka_ros2's actions or a width topic.
- :mod:`.franka_conversions`, :mod:`.franka_adapter_params`: Franka maths and parameters.
"""

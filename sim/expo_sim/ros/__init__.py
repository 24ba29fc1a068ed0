"""ROS nodes of the simulator: the sim bridge, the Franka controller emulator, graph observer, bench-ros."""

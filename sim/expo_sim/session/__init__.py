"""What ``make sim`` runs: the session over ROS, its monitor, statistics and run checks."""

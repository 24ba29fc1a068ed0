"""What every EXPO node shares on the ROS side (imports only expo_core and expo_interfaces).

- :mod:`.conversions`: message <-> numpy, one encode/decode pair per channel.
- :mod:`.transitions`: transitions as they travel (step records, feedback, assembly).
- :mod:`.params`: parameter declaration tables and validators.
- :mod:`.node_main`, :mod:`.lifecycle_teardown`: a lifecycle node's main and its stop/teardown.
- :mod:`.watchdog`, :mod:`.latency`, :mod:`.object_state`: input ages, latency windows, object
  poses and quaternion maths.
- :mod:`.node_harness`: spinning nodes in tests.
"""

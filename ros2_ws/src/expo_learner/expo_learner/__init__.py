"""EXPO learner: transition storage (rosbag2 mcap segments) and, later, the learner node.

Modules: ``bag_types`` (rosbags typestore with our messages), ``transition_codec`` (CDR bytes <->
one transition), ``transition_table`` (transitions as numpy columns), ``segments`` (the rotating
segment writer), ``segment_reader`` (loading and salvage), ``robomimic_bags`` and ``data_cli``
(the ``expo-data`` converter).
"""

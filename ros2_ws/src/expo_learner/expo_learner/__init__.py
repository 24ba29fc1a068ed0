"""EXPO learner: transition storage (rosbag2 mcap segments) and the asynchronous learner node.

Storage: ``bag_types`` (rosbags typestore with our messages), ``transition_codec`` (CDR bytes <->
one transition), ``transition_table`` (transitions as numpy columns), ``segments`` (the rotating
segment writer), ``segment_reader`` (loading and salvage), ``robomimic_bags`` and ``data_cli``
(the ``expo-data`` converter).

Learner node (``learner_node``): ``learner_params`` (parameters), ``checkpoints`` (start, resume,
versions), ``replay_store`` (thread-safe online/offline replay), ``intake`` (CDR and bags into
the replay), ``trainer`` (the training thread: UTD bookkeeping, updates, weights, checkpoints),
``learner_stats`` (reports, TensorBoard) and ``learner_node`` (the lifecycle adapter); ``start``
is the ``learner_node`` executable (normal scheduling before the heavy imports).
"""

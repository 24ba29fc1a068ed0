"""Demonstrations the MimicGen way for the MimicGen tasks (``stack``, ``threading``).

- :mod:`~expo_sim.mimicgen.available`: is robomimic / MimicGen installed, registering MimicGen's
  environments with robosuite, the one-line error naming the setup step when it is missing;
- :mod:`~expo_sim.mimicgen.experts`: scripted source demonstrators;
- :mod:`~expo_sim.mimicgen.source`: ~10 successful source demos into a robomimic HDF5 file;
- :mod:`~expo_sim.mimicgen.generate`: MimicGen's own ``prepare_src_dataset`` and
  ``generate_dataset``, run as subprocesses with a progress bar;
- :mod:`~expo_sim.mimicgen.validate`: replay every generated demo from its states, recompute
  observations, rewards and dones, keep the demos whose success holds;
- :mod:`~expo_sim.mimicgen.pipeline`: all of it, what ``expo-sim demos --generator mimicgen`` runs.

This package imports nothing heavy at import time (MimicGen is optional); see docs/mimicgen.md.
"""

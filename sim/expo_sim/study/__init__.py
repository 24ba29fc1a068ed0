"""expo-study: learning studies over tasks x algorithms x seeds (see expo_sim.study.cli)."""

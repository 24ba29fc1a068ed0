"""The offline/online training harness: pretraining, EXPO and baselines, presets, evaluation, comparison."""

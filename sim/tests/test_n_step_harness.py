"""The training harness samples what its config asks for: n-step rows for ``n_step`` > 1."""

import pytest
from expo_sim.train.harness import TrainConfig, Trainer


@pytest.mark.parametrize("algo", ["expo", "expo-n5"])
def test_the_trainer_samples_the_configs_n_step_rows(tmp_path, synthetic_lift_hdf5, algo):
    cfg = TrainConfig(
        task="lift", dataset=synthetic_lift_hdf5(), out=tmp_path / "run", algo=algo, preset="tiny",
        env_steps=40, eval_every=20, eval_episodes=1, horizon=30, progress=False,
        pretrain_dir=tmp_path / "pre",
    )  # fmt: skip
    trainer = Trainer(cfg)
    assert trainer.learner.agent.cfg.n_step == (5 if algo == "expo-n5" else 1)
    batch = next(trainer.batches)  # offline rows only (nothing online yet): demos of many steps
    if algo == "expo":
        assert batch.steps is None
    else:
        assert batch.steps is not None and batch.steps.max() == 5 and batch.steps.min() >= 1

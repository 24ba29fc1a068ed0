import math

import pytest
from expo_core.config import CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: ExpoConfig(obs_dim=0, act_dim=7), "obs_dim"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, gamma=1.0), "gamma"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, utd=0), "utd"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, offline_fraction=1.5), "offline_fraction"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, td_sampling_steps=11), "td_sampling_steps"),
        (lambda: EditorConfig(beta=0.0), "editor.beta"),
        (lambda: CriticConfig(num_critics=2, num_min=3), "critic.num_min"),
        (lambda: DiffusionConfig(beta_min=1.0, beta_max=0.5), "diffusion.beta_max"),
        (lambda: DiffusionConfig(num_steps=0), "diffusion.num_steps"),
        (lambda: DiffusionConfig(time_embed_dim=7), "diffusion.time_embed_dim"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, target_entropy=float("nan")), "target_entropy"),
    ],
)
def test_bad_values_name_the_field_and_range(make, field):
    with pytest.raises(ValueError) as e:
        make()
    assert e.value.args[0].startswith(field + "=")
    assert "allowed" in e.value.args[0]


def test_defaults_are_the_published_hyperparameters():
    c = ExpoConfig(obs_dim=19, act_dim=7)
    assert (c.diffusion.num_steps, c.diffusion.hidden_dim, c.diffusion.block_dim) == (10, 256, 1024)
    assert (c.critic.num_critics, c.critic.num_min, c.utd, c.batch_size, c.num_samples) == (10, 2, 20, 256, 8)
    assert (c.gamma, c.tau, c.diffusion.ema_tau, c.editor.beta) == (0.99, 0.005, 0.001, 0.05)


def test_json_round_trip_and_unknown_fields():
    c = ExpoConfig(obs_dim=19, act_dim=7, editor=EditorConfig(hidden_dims=(64, 64), beta=0.3))
    assert ExpoConfig.from_json(c.to_json()) == c
    with pytest.raises(ValueError, match="unknown ExpoConfig fields"):
        ExpoConfig.from_dict({**c.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="unknown editor fields"):
        ExpoConfig.from_dict({**c.to_dict(), "editor": {"beta": 0.1, "nope": 2}})


def test_reachable_target_entropy_only_changes_unreachable_targets():
    small = ExpoConfig(obs_dim=3, act_dim=7, editor=EditorConfig(beta=0.05))
    max_entropy = 7 * math.log(2 * 0.05)  # uniform edit on the box of side 2*beta
    assert small.effective_target_entropy() < max_entropy
    ref = ExpoConfig.reference(obs_dim=3, act_dim=7, editor=EditorConfig(beta=0.05))
    assert ref.effective_target_entropy() == -3.5 > max_entropy  # the reference's unreachable target
    wide = ExpoConfig(obs_dim=3, act_dim=7, editor=EditorConfig(beta=0.7))
    assert wide.effective_target_entropy() == -3.5  # reachable already: unchanged


def test_reference_switches_off_every_fix():
    r = ExpoConfig.reference(obs_dim=3, act_dim=2)
    assert not (r.editor_on_base_samples or r.reachable_target_entropy or r.bootstrap_truncated)
    assert not (r.batched_td or r.entropy_backup) and r.td_sampling_steps == 0

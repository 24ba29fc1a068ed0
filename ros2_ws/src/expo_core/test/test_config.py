import math

import pytest
from expo_core.config import ENTROPY_BACKUPS, CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig


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
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, entropy_backup=True), "entropy_backup"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, entropy_backup="max"), "entropy_backup"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, backup_temperature=0.0), "backup_temperature"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, backup_alpha=-0.1), "backup_alpha"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, act_score="min"), "act_score"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, target_score="max"), "target_score"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, target_eval_subset="other"), "target_eval_subset"),
        (
            lambda: ExpoConfig(obs_dim=5, act_dim=7, target_eval_subset="independent", target_score="mean"),
            "target_eval_subset",
        ),
        (  # two disjoint subsets of 3 need 6 critics
            lambda: ExpoConfig(
                obs_dim=5,
                act_dim=7,
                critic=CriticConfig(num_critics=5, num_min=3),
                target_eval_subset="independent",
            ),
            "target_eval_subset",
        ),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, target_sampler="slow"), "target_sampler"),
        (lambda: ExpoConfig(obs_dim=5, act_dim=7, target_base="target"), "target_base"),
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
    assert not r.batched_td and r.entropy_backup == "none" and r.td_sampling_steps == 0
    # the reference scores acting and targets alike, and samples targets by DDPM of the online base
    assert r.act_score == r.target_score == "subset_min" and r.target_eval_subset == "same"
    assert (r.target_sampler, r.target_base, r.target_sampling_steps()) == ("fast", "online", 0)


def test_otf_switch_defaults_keep_the_earlier_behaviour():
    c = ExpoConfig(obs_dim=19, act_dim=7)
    assert (c.act_score, c.target_score, c.target_eval_subset) == ("mean", "subset_min", "same")
    assert (c.entropy_backup, c.target_sampler, c.target_base) == ("none", "fast", "online")
    assert c.backup_alpha is None and c.backup_temperature > 0
    u = c.unified_scoring("subset_min")
    assert u.act_score == u.target_score == "subset_min"


def test_target_sampling_steps_follow_the_sampler_switch():
    c = ExpoConfig(obs_dim=3, act_dim=2, td_sampling_steps=2, act_sampling_steps=5)
    assert c.target_sampling_steps() == 2
    assert c.replace(target_sampler="faithful").target_sampling_steps() == 5


def test_old_boolean_entropy_backup_loads_as_its_named_variant():
    c = ExpoConfig(obs_dim=19, act_dim=7)
    old = c.to_dict()
    for key in ("act_score", "target_score", "target_eval_subset", "target_sampler", "target_base"):
        del old[key]
    assert ExpoConfig.from_dict({**old, "entropy_backup": True}).entropy_backup == "softmax_entropy"
    assert ExpoConfig.from_dict({**old, "entropy_backup": False}) == c
    for v in ENTROPY_BACKUPS:
        assert ExpoConfig.from_json(c.replace(entropy_backup=v).to_json()).entropy_backup == v

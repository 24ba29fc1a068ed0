"""ExpoConfig.editor_score: what the editor maximizes. "mean" (the paper's) or "subset_min" (the
min over a random subset of critic.num_min critics, all of them when num_min = num_critics),
checked on agents whose critics differ (divergent.py) against a manual step on a twin agent; a
twin that maximizes the other rule must end elsewhere."""

import dataclasses

import pytest
import torch
from divergent import diverge
from expo_core.agent import ExpoAgent
from expo_core.config import ExpoConfig
from expo_core.losses import editor_loss
from test_network_roles import _batch, _same


def _manual_editor_step(agent, b, alpha, score, draw_members):
    """The editor step as it must be: EMA-base samples, the online critics, `score` over the
    members drawn after the base samples (or all critics)."""
    cfg = agent.cfg
    with torch.no_grad():
        a = agent.policy.base.sample(b.obs, 1, agent.generator, steps=cfg.act_sampling_steps)[:, 0]
    critic = agent.policy.critic
    members = critic.random_subset(agent.generator, b.obs.device) if draw_members else None
    ed = editor_loss(agent.policy.editor, critic, b.obs, a, alpha, agent.generator, score, members)
    agent._step(agent.editor_opt, ed.loss)
    return ed.loss.item()


def _editor_step_loss(agent, b, alpha):
    """The agent's own editor step; returns the editor loss it stepped on (Adam's first step is
    close to a sign step, so the parameters alone could not tell two objectives apart)."""
    seen = []
    step = agent._step

    def spy(opt, loss):
        if opt is agent.editor_opt:
            seen.append(loss.item())
        step(opt, loss)

    agent._step = spy
    agent._editor_and_temperature_steps(b, alpha)
    agent._step = step
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize("num_min", [2, 4])  # a random subset of 4 critics; all 4
def test_subset_min_editor_maximizes_the_min_of_its_critics(make_cfg, num_min):
    cfg = make_cfg(editor_score="subset_min")
    cfg = cfg.replace(critic=dataclasses.replace(cfg.critic, num_min=num_min))
    agent, twin, wrong = (diverge(ExpoAgent(cfg, seed=0)) for _ in range(3))
    b = agent._normalized(_batch(cfg))
    alpha = agent.alpha
    loss = _editor_step_loss(agent, b, alpha)
    want = _manual_editor_step(twin, b, alpha, "subset_min", draw_members=num_min < cfg.critic.num_critics)
    other = _manual_editor_step(wrong, b, alpha, "mean", draw_members=False)
    assert loss == pytest.approx(want, rel=1e-6) and abs(loss - other) > 1e-3
    assert _same(agent.policy.editor, twin.policy.editor)


def test_mean_editor_is_unchanged_by_the_switch(make_cfg):
    cfg = make_cfg()
    assert cfg.editor_score == "mean"
    agent, twin, wrong = (diverge(ExpoAgent(cfg, seed=0)) for _ in range(3))
    b = agent._normalized(_batch(cfg))
    alpha = agent.alpha
    loss = _editor_step_loss(agent, b, alpha)
    want = _manual_editor_step(twin, b, alpha, "mean", draw_members=False)
    other = _manual_editor_step(wrong, b, alpha, "subset_min", draw_members=False)
    assert loss == pytest.approx(want, rel=1e-6) and abs(loss - other) > 1e-3
    assert _same(agent.policy.editor, twin.policy.editor)


def test_editor_loss_scores_the_edited_action_by_the_rule(make_cfg):
    agent = diverge(ExpoAgent(make_cfg(), seed=0))
    b = agent._normalized(_batch(agent.cfg))
    critic, editor = agent.policy.critic, agent.policy.editor
    members = torch.tensor([3, 1])
    alpha = torch.tensor(0.1)
    for score, sub in (("mean", None), ("subset_min", members), ("subset_min", None)):
        ed = editor_loss(editor, critic, b.obs, b.action, alpha, torch.Generator().manual_seed(5), score, sub)
        sample = editor(b.obs, b.action, torch.Generator().manual_seed(5))
        with torch.no_grad():
            q_all = critic(b.obs, sample.action)  # (E, B)
        if score == "mean":
            q = q_all.mean(0)
        else:
            q = (q_all if sub is None else q_all[sub]).amin(0)
        torch.testing.assert_close(ed.q, q.mean())
        want = (alpha * sample.log_prob - q).mean().detach()
        torch.testing.assert_close(ed.loss, want, rtol=1e-5, atol=1e-6)


def test_editor_score_is_validated_and_left_out_of_the_json_at_its_default(make_cfg):
    with pytest.raises(ValueError, match="editor_score"):
        make_cfg(editor_score="max")
    assert "editor_score" not in make_cfg().to_dict()
    cfg = make_cfg(editor_score="subset_min")
    assert ExpoConfig.from_dict(cfg.to_dict()).editor_score == "subset_min"

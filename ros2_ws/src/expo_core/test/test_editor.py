import math

import torch
from expo_core.config import EditorConfig
from expo_core.editor import Editor


def test_every_edit_stays_within_beta_even_at_the_box_edge():
    torch.manual_seed(0)
    ed = Editor(EditorConfig(hidden_dims=(16,), beta=0.3, log_std_max=2.0), obs_dim=2, act_dim=3)
    with torch.no_grad():
        ed.net.net[-1].bias.fill_(3.0)  # push the mean hard toward +1 edits
    obs = torch.randn(4000, 2)
    base = torch.rand(4000, 3) * 2 - 1
    base[:100] = 1.0  # at the box edge: clipping must not create larger moves
    out = ed(obs, base)
    assert (out.action - base).abs().max() <= 0.3 + 1e-6
    assert out.action.abs().max() <= 1.0


def test_log_prob_matches_the_change_of_variables():
    torch.manual_seed(1)
    beta = 0.1
    ed = Editor(EditorConfig(hidden_dims=(16,), beta=beta), obs_dim=2, act_dim=2)
    obs, a = torch.randn(7, 2), torch.zeros(7, 2)  # a = 0: no clipping, edit = beta * tanh(z)
    eps = torch.randn(7, 2)
    out = ed(obs, a, noise=eps)
    mu, log_std = ed.dist_params(obs, a)
    z = (mu + log_std.exp() * eps).double()
    normal = torch.distributions.Normal(mu.double(), log_std.exp().double()).log_prob(z)
    # density of y = beta * tanh(z): p(z) / |dy/dz| = p(z) / (beta * (1 - tanh(z)^2))
    ref = (normal - torch.log(beta * (1 - torch.tanh(z) ** 2))).sum(-1)
    assert torch.allclose(out.log_prob.double(), ref, atol=1e-4)
    assert torch.allclose(out.action.double(), beta * torch.tanh(z), atol=1e-6)


def test_log_prob_beta_correction_is_minus_d_log_beta():
    torch.manual_seed(2)
    e1 = Editor(EditorConfig(hidden_dims=(8,), beta=0.05), 2, 3)
    e2 = Editor(EditorConfig(hidden_dims=(8,), beta=0.5), 2, 3)
    e2.load_state_dict(e1.state_dict())
    obs, a, eps = torch.randn(5, 2), torch.zeros(5, 3), torch.randn(5, 3)
    diff = e1(obs, a, noise=eps).log_prob - e2(obs, a, noise=eps).log_prob
    assert torch.allclose(diff, torch.full((5,), -3 * math.log(0.05 / 0.5)), atol=1e-5)


def test_deterministic_edit_is_the_mean():
    ed = Editor(EditorConfig(hidden_dims=(8,), beta=0.2), 2, 2)
    obs, a = torch.randn(3, 2), torch.zeros(3, 2)
    mu, _ = ed.dist_params(obs, a)
    assert torch.allclose(ed(obs, a, deterministic=True).action, 0.2 * torch.tanh(mu))


def _random_editor(beta: float = 0.3) -> Editor:
    ed = Editor(EditorConfig(hidden_dims=(16, 12), beta=beta), obs_dim=4, act_dim=3)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in ed.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return ed


def test_act_is_forward_without_the_log_prob():
    """The acting path (split first layer, obs broadcast over N, no log-prob) gives forward's
    edited actions for the same noise, the same generator draws and the editor's mean."""
    ed = _random_editor()
    obs, a = torch.randn(5, 4), torch.rand(5, 6, 3) * 2 - 1
    obs_rep = obs[:, None].expand(5, 6, 4)
    eps = torch.randn(5, 6, 3)
    assert torch.allclose(ed.act(obs, a, noise=eps), ed(obs_rep, a, noise=eps).action, atol=1e-6)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.allclose(ed.act(obs, a, g1), ed(obs_rep, a, g2).action, atol=1e-6)
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))  # same draws consumed
    det = ed.act(obs, a, deterministic=True)
    assert torch.allclose(det, ed(obs_rep, a, deterministic=True).action, atol=1e-6)
    same_shape = ed.act(obs_rep, a, noise=eps)  # obs with the actions' own leading shape
    assert torch.allclose(same_shape, ed(obs_rep, a, noise=eps).action, atol=1e-6)
    assert (ed.act(obs, a, noise=eps * 10) - a).abs().max() <= 0.3 + 1e-6
    assert not ed.act(obs, a, noise=eps).requires_grad

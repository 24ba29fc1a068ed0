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

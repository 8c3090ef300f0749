"""DP-SGD, its accountant and the canary: checked against loops, plain SGD and Opacus."""
import math
import warnings

import pytest
import torch
from torch import nn

from lmcourse import privacy
from lmcourse.privacy import (WindowLM, clip_per_sample, digit_candidates, dp_sgd_step, epsilon,
                              exposure, lm_loss, noise_for_epsilon, per_sample_grads, plant_canary,
                              poisson_sample, rdp_sampled_gaussian, train_private)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


def _data(n=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def _loop_grads(model, x, y):
    out = []
    for i in range(len(x)):
        model.zero_grad()
        lm_loss(model(x[i:i + 1]), y[i:i + 1]).backward()
        out.append({n: p.grad.clone() for n, p in model.named_parameters()})
    return {n: torch.stack([o[n] for o in out]) for n in out[0]}


def test_per_sample_grads_equal_a_loop_for_mlp_and_char_lm():
    model, (x, y) = _mlp(), _data()
    ours, loop = per_sample_grads(model, x, y), _loop_grads(model, x, y)
    for name in loop:
        torch.testing.assert_close(ours[name], loop[name], atol=1e-6, rtol=1e-5)
    torch.manual_seed(0)
    lm = WindowLM(vocab_size=7, context=3, n_embd=4, hidden=6)
    ids = torch.randint(0, 7, (5, 9))
    ours, loop = per_sample_grads(lm, ids[:, :-1], ids[:, 1:]), _loop_grads(lm, ids[:, :-1], ids[:, 1:])
    for name in loop:
        torch.testing.assert_close(ours[name], loop[name], atol=1e-6, rtol=1e-5)


def test_clipping_bounds_each_sample_and_leaves_small_ones_alone():
    grads = per_sample_grads(_mlp(), *_data())
    clipped, norms = clip_per_sample(grads, 0.05)
    after = torch.cat([g.flatten(1) for g in clipped.values()], 1).norm(dim=1)
    assert norms.max() > 0.05  # the test clips something
    assert (after <= 0.05 + 1e-6).all()
    clipped, _ = clip_per_sample(grads, 1e6)
    for name in grads:
        torch.testing.assert_close(clipped[name], grads[name])
    with pytest.raises(ValueError, match="max_norm"):
        clip_per_sample(grads, 0.0)


def test_dp_sgd_with_no_noise_and_huge_clip_is_plain_sgd():
    x, y = _data()
    a, b = _mlp(), _mlp()
    dp_sgd_step(a, torch.optim.SGD(a.parameters(), lr=0.5), x, y, max_grad_norm=1e6,
                noise_multiplier=0.0, expected_batch_size=len(x))
    opt = torch.optim.SGD(b.parameters(), lr=0.5)
    lm_loss(b(x), y).backward()
    opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5)


def test_noise_has_the_stated_scale_and_an_empty_batch_still_steps():
    model = nn.Linear(400, 50, bias=False)
    nn.init.zeros_(model.weight)
    x = torch.zeros(0, 400)
    stats = dp_sgd_step(model, torch.optim.SGD(model.parameters(), lr=1.0), x, torch.zeros(0, 50),
                        max_grad_norm=2.0, noise_multiplier=1.5, expected_batch_size=10,
                        loss_fn=lambda out, t: ((out - t) ** 2).sum(),
                        generator=torch.Generator().manual_seed(0))
    assert stats.batch_size == 0 and math.isnan(stats.loss)
    # weight = -lr * noise / L with noise ~ N(0, (sigma C)^2): std sigma * C / L = 0.3
    assert abs(float(model.weight.detach().std()) - 0.3) < 0.01


def test_poisson_sample_rate():
    sizes = [len(poisson_sample(1000, 0.05, torch.Generator().manual_seed(s))) for s in range(40)]
    assert abs(sum(sizes) / len(sizes) - 50) < 4
    assert len(set(sizes)) > 5  # the batch size varies: that is Poisson sampling
    with pytest.raises(ValueError, match="sample_rate"):
        poisson_sample(10, 1.5)


def test_epsilon_falls_with_noise_and_rises_with_steps():
    eps = [epsilon(s, 0.01, 1000, 1e-5)[0] for s in (0.6, 0.8, 1.0, 2.0)]
    assert all(a > b for a, b in zip(eps, eps[1:]))
    eps = [epsilon(1.0, 0.01, t, 1e-5)[0] for t in (10, 100, 1000, 10000)]
    assert all(a < b for a, b in zip(eps, eps[1:]))
    # q = 1 is the plain Gaussian mechanism: RDP alpha / (2 sigma^2)
    assert rdp_sampled_gaussian(1.0, 2.0, 5) == pytest.approx(5 / 8)
    # subsampling amplifies privacy: a 1% batch is far more private than the full one
    assert rdp_sampled_gaussian(0.01, 1.0, 8) < 0.01 * rdp_sampled_gaussian(1.0, 1.0, 8)
    sigma = noise_for_epsilon(2.0, 0.01, 1000, 1e-5)
    assert epsilon(sigma, 0.01, 1000, 1e-5)[0] <= 2.0 < epsilon(sigma - 0.02, 0.01, 1000, 1e-5)[0]


@pytest.mark.filterwarnings("ignore:Optimal order")  # a large epsilon is best at the smallest order
def test_epsilon_matches_opacus_rdp_accountant():
    rdp_mod = pytest.importorskip("opacus.accountants.analysis.rdp")
    orders = list(range(2, 64))
    for q, sigma, steps in [(0.01, 1.0, 1000), (0.05, 0.7, 300), (0.002, 1.3, 5000)]:
        theirs = rdp_mod.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
        ours = [steps * rdp_sampled_gaussian(q, sigma, a) for a in orders]
        assert ours == pytest.approx(list(theirs), rel=1e-6)
        eps, _ = rdp_mod.get_privacy_spent(orders=orders, rdp=theirs, delta=1e-5)
        assert epsilon(sigma, q, steps, 1e-5, orders)[0] == pytest.approx(eps, rel=1e-6)


def test_per_sample_grads_match_opacus():
    gsm = pytest.importorskip("opacus.grad_sample")
    model, (x, y) = _mlp(), _data()
    ours = per_sample_grads(model, x, y)
    # loss_reduction="mean": Opacus undoes the mean's 1/B, giving each example's own gradient
    wrapped = gsm.GradSampleModule(_mlp(), loss_reduction="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "full backward hook is firing...": inputs need no grad
        lm_loss(wrapped(x), y).backward()
    for (name, p) in wrapped._module.named_parameters():
        torch.testing.assert_close(p.grad_sample, ours[name], atol=1e-6, rtol=1e-5)


def test_canary_ranks_a_memorised_secret_first():
    chars = sorted(set("pin is 0123456789\n"))
    stoi = {c: i for i, c in enumerate(chars)}
    encode = lambda s: [stoi[c] for c in s]  # noqa: E731
    text = plant_canary("\n" * 30, "pin is 4 7 1", copies=20)
    assert text.count("pin is 4 7 1") == 20
    ids = torch.tensor(encode(text))
    x = torch.stack([ids[i:i + 13] for i in range(0, len(ids) - 14, 3)])
    y = torch.stack([ids[i + 1:i + 14] for i in range(0, len(ids) - 14, 3)])
    torch.manual_seed(0)
    lm = WindowLM(len(chars), context=8, n_embd=8, hidden=32)
    cands = digit_candidates(3)
    before = exposure(lm, encode, "pin is ", "4 7 1", cands)
    train_private(lm, x, y, steps=150, sample_rate=0.5, lr=1e-2, private=False)
    after = exposure(lm, encode, "pin is ", "4 7 1", cands)
    assert after.rank == 1 and after.top_candidate == "4 7 1"
    assert after.exposure == pytest.approx(math.log2(1000))
    assert before.rank > 1
    with pytest.raises(ValueError, match="not among the candidates"):
        exposure(lm, encode, "pin is ", "4 7", cands)


def test_equal_scores_get_the_worst_rank():
    class Flat(nn.Module):
        def forward(self, idx):
            return torch.zeros(*idx.shape, 10), None

    e = exposure(Flat(), lambda s: [int(c) if c.isdigit() else 0 for c in s], "x", "12", ["12", "34", "56"])
    assert e.rank == 3 and e.exposure == pytest.approx(0.0)


def test_private_run_reports_epsilon_and_baseline_is_unbounded():
    x, y = _data(40)
    run = train_private(_mlp(), x, y, steps=5, sample_rate=0.25, lr=0.01, noise_multiplier=1.0)
    assert run.epsilon(1e-5) == pytest.approx(epsilon(1.0, 0.25, 5, 1e-5)[0])
    assert train_private(_mlp(), x, y, steps=5, sample_rate=0.25, lr=0.01,
                         private=False).epsilon(1e-5) == math.inf
    assert "WindowLM" in privacy.__all__

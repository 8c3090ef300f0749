"""lmcourse.scaling: the fits recover known constants, bad input is refused, the sweep caches."""
import math

import numpy as np
import pytest

from lmcourse import runtime, scaling
from lmcourse.models.gpt import GPT, GPTConfig

# Hoffmann et al. (2022), eq. 10: the Chinchilla fit.
CHINCHILLA = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def surface_data(noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    N, D = np.meshgrid(np.geomspace(1e5, 1e9, 6), np.geomspace(1e7, 1e11, 6))
    N, D = N.ravel(), D.ravel()
    c = CHINCHILLA
    L = c["E"] + c["A"] / N ** c["alpha"] + c["B"] / D ** c["beta"]
    return N, D, L * np.exp(rng.normal(0.0, noise, N.size))


def test_training_flops_is_six_n_d():
    assert scaling.training_flops(1e6, 2e7) == 6 * 1e6 * 2e7
    np.testing.assert_allclose(scaling.training_flops([1, 2], [3, 4]), [18, 48])


def test_power_law_recovers_its_constants_despite_noise_and_an_outlier():
    rng = np.random.default_rng(1)
    x = np.geomspace(1e3, 1e7, 20)
    y = 5.0 * x ** -0.3 * np.exp(rng.normal(0, 0.01, x.size))
    a, alpha = scaling.fit_power_law(x, y)
    assert abs(alpha - 0.3) < 0.01 and abs(a / 5.0 - 1) < 0.1
    y[-1] *= 2.0  # one broken run at the end: the Huber loss barely moves, least squares tilts
    _, robust = scaling.fit_power_law(x, y)
    slope = -np.polyfit(np.log(x), np.log(y), 1)[0]
    assert abs(robust - 0.3) < 0.01 < abs(slope - 0.3)


def test_loss_surface_recovers_chinchilla_constants():
    fit = scaling.fit_loss_surface(*surface_data(noise=0.003))
    assert abs(fit.E - CHINCHILLA["E"]) < 0.05
    assert abs(fit.alpha - CHINCHILLA["alpha"]) < 0.03 and abs(fit.beta - CHINCHILLA["beta"]) < 0.03
    assert abs(math.log(fit.A / CHINCHILLA["A"])) < 0.3 and abs(math.log(fit.B / CHINCHILLA["B"])) < 0.3
    N, D, L = surface_data(noise=0.0)
    np.testing.assert_allclose(fit.loss(N, D), L, rtol=0.01)  # the fitted surface predicts the clean one


def test_compute_optimal_matches_the_closed_form():
    fit = scaling.LossFit(**CHINCHILLA, objective=0.0, points=0)
    a, b, A, B = fit.alpha, fit.beta, fit.A, fit.B
    G = (a * A / (b * B)) ** (1 / (a + b))  # Hoffmann et al. (2022), eq. 4
    for C in (1e15, 1e20, 5.76e23):
        n_opt, d_opt = scaling.compute_optimal(fit, C)
        assert n_opt == pytest.approx(G * (C / 6) ** (b / (a + b)), rel=1e-4)
        assert 6 * n_opt * d_opt == pytest.approx(C, rel=1e-9)
        for factor in (0.8, 1.25):  # moving along the budget line either way costs loss
            assert fit.loss(n_opt * factor, d_opt / factor) > fit.loss(n_opt, d_opt)


@pytest.mark.parametrize("x, y, message", [
    ([1, 2, -3], [1, 2, 3], "positive finite"),
    ([1, 2, np.nan], [1, 2, 3], "positive finite"),
    ([1, 2, 3], [1, 2], "equal lengths"),
    ([1], [1], "at least 2 points"),
    ([2, 2, 2], [1, 2, 3], "distinct"),
    ([[1, 2], [3, 4]], [1, 2], "1-D"),
])
def test_power_law_refuses_bad_input(x, y, message):
    with pytest.raises(ValueError, match=message):
        scaling.fit_power_law(x, y)


def test_bad_input_errors_name_what_was_expected():
    N, D, L = surface_data(0.0)
    with pytest.raises(ValueError, match="at least 5 points"):
        scaling.fit_loss_surface(N[:4], D[:4], L[:4])
    with pytest.raises(ValueError, match="equal lengths"):
        scaling.fit_loss_surface(N, D[:-1], L)
    with pytest.raises(ValueError, match="distinct"):
        scaling.fit_loss_surface(np.full(6, 1e6), D[:6], L[:6])
    with pytest.raises(TypeError, match="positive numbers"):
        scaling.fit_power_law(["a", "b"], [1, 2])
    with pytest.raises(TypeError, match="loss"):
        scaling.compute_optimal(object(), 1e20)
    fit = scaling.LossFit(**CHINCHILLA, objective=0.0, points=0)
    with pytest.raises(ValueError, match="C must"):
        scaling.compute_optimal(fit, -1.0)
    with pytest.raises(ValueError, match="positive finite"):
        scaling.training_flops(0, 10)
    with pytest.raises(ValueError, match="2 distinct shapes"):
        scaling.sweep("smoke", shapes=[(1, 8)], steps=[1, 2])
    with pytest.raises(TypeError, match="n_layer, n_embd"):
        scaling.sweep("smoke", shapes=[(1,), (2,)], steps=[1, 2])


def tiny_budget():
    return runtime.budget("smoke").replace(corpus_chars=20_000, eval_tokens=400, batch_size=4,
                                           block_size=16)


def test_a_tiny_sweep_trains_then_reads_its_cache_then_the_shipped_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCOURSE_HOME", str(tmp_path / "home"))
    kwargs = dict(shapes=[(1, 8), (1, 16)], steps=[2, 4], device="cpu", use_shipped=False)
    first = scaling.sweep(tiny_budget(), **kwargs)
    assert first.count("trained") == 4 and len({r.key for r in first.runs}) == 4
    N, D, L = first.arrays()
    assert N[0] < N[-1] and D[0] < D[1] and np.isfinite(L).all() and first.unigram_loss > 0
    # N leaves the embeddings out, so a GPT of the same shape over another vocabulary has the same N
    other_vocab = GPT(GPTConfig(vocab_size=5, block_size=16, n_layer=1, n_head=1, n_embd=8))
    assert first.runs[0].N == scaling.non_embedding_params(other_vocab) < sum(
        p.numel() for p in other_vocab.parameters())

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(scaling, "_train_one", no_training)
    again = scaling.sweep(tiny_budget(), **kwargs)
    assert again.count("cache") == 4
    assert [r.val_loss for r in again.runs] == [r.val_loss for r in first.runs]

    shipped = tmp_path / "scaling_smoke.json"
    monkeypatch.setattr(scaling, "shipped_path", lambda name: shipped)
    scaling.write_shipped(first, "test")
    for path in (tmp_path / "home" / "results" / "scaling").glob("*.json"):
        path.unlink()
    from_package = scaling.sweep(tiny_budget(), **{**kwargs, "use_shipped": True})
    assert from_package.count("shipped") == 4
    assert [r.val_loss for r in from_package.runs] == [r.val_loss for r in first.runs]


def test_a_changed_setting_or_a_corrupt_cache_file_trains_again(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCOURSE_HOME", str(tmp_path))
    kwargs = dict(shapes=[(1, 8), (1, 16)], steps=[2, 3], device="cpu", use_shipped=False)
    first = scaling.sweep(tiny_budget(), **kwargs)
    other = scaling.sweep(tiny_budget().replace(gpt_learning_rate=1e-3), **kwargs)
    assert other.count("trained") == 4 and not {r.key for r in first.runs} & {r.key for r in other.runs}
    broken = tmp_path / "results" / "scaling" / f"{first.runs[0].key}.json"
    broken.write_text("{not json")
    again = scaling.sweep(tiny_budget(), **kwargs)
    assert again.count("trained") == 1 and again.count("cache") == 3
    assert list(broken.parent.glob(f"{broken.name}.corrupt-*"))  # set aside, not deleted

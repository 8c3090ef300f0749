"""lmcourse.compress: pruning reaches its sparsity, int8 round trips within half a step,
the library's int8 agrees with ours, the distillation loss is Hinton et al.'s formula,
and distillation trains a student."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from lmcourse import compress
from lmcourse.data.batching import LMBatches
from lmcourse.models.gpt import GPT, GPTConfig
from lmcourse.train import TrainConfig, evaluate, train


def small_gpt(seed=0, n_embd=32, n_layer=2, vocab=11):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=16, n_layer=n_layer, n_head=2, n_embd=n_embd)).eval()


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("amount", [0.5, 0.8])
def test_pruning_reaches_the_sparsity_and_keeps_shapes(scope, amount):
    model = small_gpt()
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    before = {n: m.weight.detach().clone() for n, m in compress.prunable_linears(model)}
    got = compress.magnitude_prune(model, amount, scope=scope)
    assert abs(got - amount) < 1e-3 and abs(compress.sparsity(model) - got) < 1e-12
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes  # no weight_orig / mask left
    for name, layer in compress.prunable_linears(model):
        kept = layer.weight != 0
        assert torch.equal(layer.weight[kept], before[name][kept])  # survivors untouched
        if scope == "layer":
            assert abs((~kept).float().mean().item() - amount) < 0.01
    if scope == "global":  # one threshold: every pruned weight is no larger than every kept one
        pruned = torch.cat([before[n][m.weight == 0] for n, m in compress.prunable_linears(model)])
        kept = torch.cat([before[n][m.weight != 0] for n, m in compress.prunable_linears(model)])
        assert pruned.abs().max() <= kept.abs().min()
    model(torch.zeros(1, 4, dtype=torch.long))  # still runs


def test_pruning_refuses_bad_arguments():
    with pytest.raises(ValueError, match="amount"):
        compress.magnitude_prune(small_gpt(), 1.5)
    with pytest.raises(ValueError, match="scope"):
        compress.magnitude_prune(small_gpt(), 0.5, scope="row")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_int8_round_trip_is_within_half_a_step(dtype):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(7, 13, generator=g, dtype=dtype) * torch.logspace(-3, 2, 7, dtype=dtype)[:, None]
    w[3] = 0  # a row of zeros
    q, scale = compress.quantize_int8(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and scale.shape == (7,) and scale.dtype == dtype
    assert q.abs().max() <= 127 and (q.abs().amax(1)[scale > 0] == 127).all()
    back = compress.dequantize_int8(q, scale, dtype)
    assert torch.isfinite(back).all() and (back[3] == 0).all() and scale[3] == 0
    assert ((back - w).abs() <= scale[:, None] / 2 + 1e-12).all()


def test_int8_refuses_bad_input():
    with pytest.raises(ValueError, match=r"\(out, in\)"):
        compress.quantize_int8(torch.randn(3))
    with pytest.raises(ValueError, match="NaN"):
        compress.quantize_int8(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="one per row"):
        compress.dequantize_int8(torch.zeros(2, 3, dtype=torch.int8), torch.ones(3))


def test_int8_models_and_the_library_agree_with_the_float_model():
    model = small_gpt(n_embd=64)
    ours, library = compress.quantize_model_int8(model), compress.library_quantize_int8(model, verbose=False)
    idx = torch.randint(11, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        exact, a, b = model(idx)[0], ours(idx)[0], library(idx)[0]
    spread = exact.abs().max()
    assert (a - exact).abs().max() < 0.02 * spread
    assert (b - exact).abs().max() < 0.05 * spread  # the library also rounds the activations
    assert (a - b).abs().max() < 0.05 * spread
    # Weight by weight: the library's per-row int8 weights are ours up to one step.
    name, layer = compress.prunable_linears(model)[0]
    q, scale = compress.quantize_int8(layer.weight)
    lib_w = library.get_submodule(name).weight().dequantize()
    assert ((lib_w - compress.dequantize_int8(q, scale)).abs() <= scale[:, None] + 1e-7).all()
    full = compress.model_size_bytes(model)
    assert compress.model_size_bytes(ours) < 0.4 * full and compress.model_size_bytes(library) < 0.45 * full


def test_model_size_counts_a_tied_matrix_once():
    model = small_gpt()
    assert compress.model_size_bytes(model) == 4 * sum(p.numel() for p in model.parameters())
    assert compress.saved_size_bytes(model) > compress.model_size_bytes(model)


def test_distillation_loss_is_the_hand_computation():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    y = torch.randint(7, (5,), generator=g)
    T, alpha = 3.0, 0.3
    kl = 0.0
    for i in range(5):
        p = [math.exp(v / T) for v in t[i].tolist()]
        q = [math.exp(v / T) for v in s[i].tolist()]
        p, q = [v / sum(p) for v in p], [v / sum(q) for v in q]
        kl += sum(a * math.log(a / b) for a, b in zip(p, q)) / 5
    ce = sum(-math.log(math.exp(s[i, y[i]]) / sum(math.exp(v) for v in s[i].tolist())) for i in range(5)) / 5
    expected = alpha * T * T * kl + (1 - alpha) * ce
    got = compress.distillation_loss(s, t, y, T, alpha)
    assert got.ndim == 0 and abs(got.item() - expected) < 1e-10
    assert compress.distillation_loss(s, s, y, T, 1.0).abs() < 1e-12  # a student equal to its teacher
    assert torch.isclose(compress.distillation_loss(s, t, y, T, 0.0), F.cross_entropy(s, y))
    with pytest.raises(ValueError, match="same shape"):
        compress.distillation_loss(s, t[:, :3], y, T, alpha)
    with pytest.raises(ValueError, match="alpha"):
        compress.distillation_loss(s, t, y, T, 1.5)


def test_distill_lowers_the_students_loss():
    pattern = torch.tensor([0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 7, 8, 9, 10, 6] * 80)
    batches = LMBatches.from_tokens(pattern, batch_size=8, block_size=16, device="cpu")
    teacher = small_gpt(seed=1)
    train(teacher, batches, TrainConfig(steps=40, lr=3e-3, eval_batches=0, progress=False), device="cpu")
    student = small_gpt(seed=2, n_embd=16, n_layer=1)
    before = evaluate(student, batches, 4)
    history = compress.distill(teacher, student, batches,
                               TrainConfig(steps=40, lr=3e-3, eval_interval=40, eval_batches=2, progress=False),
                               temperature=2.0, alpha=0.5, device="cpu")
    assert history.val[-1]["loss"] < 0.7 * history.val[0]["loss"]  # the distillation loss falls
    assert evaluate(student, batches, 4) < 0.7 * before  # and so does the plain cross-entropy
    assert not any(p.requires_grad for p in teacher.parameters())


def test_cpu_latency_times_every_model():
    model = small_gpt()
    times = compress.cpu_latency({"a": model, "b": copy.deepcopy(model)}, torch.zeros(1, 8, dtype=torch.long),
                                 rounds=2, repeats=1)
    assert set(times) == {"a", "b"} and all(t > 0 for t in times.values())
    with pytest.raises(TypeError, match="non-empty dict"):
        compress.cpu_latency({}, torch.zeros(1, 8, dtype=torch.long))

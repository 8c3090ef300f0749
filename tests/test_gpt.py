"""GPT: the KV cache agrees with the full forward pass, causality, tying, init, errors, and that it learns;
the Llama-style options (RMSNorm, SwiGLU, grouped-query attention) keep all of that."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmcourse.data.batching import random_windows
from lmcourse.data.synthetic import MarkovSource
from lmcourse.generate import beam_search, generate
from lmcourse.models.gpt import GPT, GPTConfig, KVCache, RMSNorm, SwiGLU, attention_maps
from lmcourse.train import TrainConfig, train

POSITIONS = ["learned", "rotary"]


pytestmark = pytest.mark.usefixtures("one_thread")


V = 11
CHAIN = MarkovSource(vocab_size=V, order=1, branching=2, seed=0)


CHAIN_DATA = {"train": torch.from_numpy(CHAIN.sample(20_000, seed=1)),
              "val": torch.from_numpy(CHAIN.sample(4_000, seed=2))}
CHAIN_TRAINING = TrainConfig(steps=100, lr=3e-3, warmup_steps=10, eval_interval=100, eval_batches=4,
                             progress=False)


def chain_batch(split, generator):
    return random_windows(CHAIN_DATA[split], batch_size=16, block_size=32, generator=generator)


@pytest.fixture(scope="module")
def trained(one_thread):
    """A small GPT of each position kind trained for 100 steps on an order-1 Markov chain."""
    models = {}
    for positions in POSITIONS:
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=V, block_size=64, n_layer=2, n_head=2, n_embd=32,
                              positions=positions))
        history = train(model, chain_batch, CHAIN_TRAINING, device="cpu")
        models[positions] = (model.eval(), history)
    return models


def tiny(positions="learned", seed=0, **kwargs) -> GPT:
    torch.manual_seed(seed)
    options = dict(vocab_size=11, block_size=64, n_layer=2, n_head=2, n_embd=16,
                   positions=positions) | kwargs
    return GPT(GPTConfig(**options)).eval()


def tokens(shape, vocab_size=11, seed=1):
    return torch.randint(vocab_size, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("positions", POSITIONS)
def test_cached_logits_equal_the_full_forward_pass(positions):
    model, idx = tiny(positions), tokens((3, 20))
    with torch.no_grad():
        full, cache = model(idx)
        assert full.shape == (3, 20, 11) and isinstance(cache, KVCache) and cache.length == 20

        # prompt, then one token at a time
        logits, state = model(idx[:, :7])
        pieces = [logits]
        for t in range(7, 20):
            logits, state = model(idx[:, t:t + 1], state)
            pieces.append(logits)
        torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
        assert state.length == 20

        # the prompt in two chunks: the second chunk needs the offset causal mask
        first, state = model(idx[:, :5])
        second, state = model(idx[:, 5:], state)
        torch.testing.assert_close(torch.cat([first, second], dim=1), full, atol=1e-5, rtol=0)
        for (k, v), (k_full, v_full) in zip(state.layers, cache.layers):
            torch.testing.assert_close(k, k_full, atol=1e-5, rtol=0)
            torch.testing.assert_close(v, v_full, atol=1e-5, rtol=0)


def test_a_forward_pass_leaves_the_cache_it_was_given_unchanged():
    model, idx = tiny("rotary"), tokens((2, 9))
    with torch.no_grad():
        _, state = model(idx[:, :6])
        a, _ = model(idx[:, 6:], state)
        b, _ = model(idx[:, 6:], state)  # the same cache again: same answer
    assert state.length == 6
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def greedy_without_cache(model, prompt, steps):
    """Greedy decoding the slow way: re-read the whole prefix for every new token."""
    idx = prompt[None]
    with torch.no_grad():
        for _ in range(steps):
            logits, _ = model(idx)
            idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx[0]


@pytest.mark.parametrize("positions", POSITIONS)
def test_greedy_generation_with_the_cache_equals_rerunning_the_prefix(trained, positions):
    # A trained model: its greedy choices follow the chain, so the 50 tokens vary and the
    # comparison covers real decisions (a random model tends to repeat one token).
    model, _ = trained[positions]
    prompt = tokens((8,), seed=3)
    with_cache = generate(model, prompt, 50, temperature=0.0)
    assert with_cache.shape == (58,)
    assert len(set(with_cache[8:].tolist())) > 2
    torch.testing.assert_close(with_cache, greedy_without_cache(model, prompt, 50), atol=0, rtol=0)
    torch.testing.assert_close(with_cache, generate(model, prompt, 50, temperature=0.0, use_cache=False),
                               atol=0, rtol=0)


@pytest.mark.parametrize("positions", POSITIONS)
def test_changing_a_future_token_leaves_earlier_logits_unchanged(positions):
    model, idx = tiny(positions), tokens((2, 12))
    changed = idx.clone()
    changed[:, 8] = (changed[:, 8] + 1) % 11
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, :8], b[:, :8], atol=0, rtol=0)
    assert not torch.allclose(a[:, 8:], b[:, 8:])  # the changed token does matter from there on


def test_positions_matter():
    # Without positions attention is a bag of words: a sequence and its reversal give the
    # same last-position logits. Both position schemes must break that symmetry.
    idx = tokens((1, 10), seed=5)
    for positions in POSITIONS:
        model = tiny(positions)
        with torch.no_grad():
            forward, _ = model(idx)
            backward, _ = model(torch.cat([idx[:, :-1].flip(1), idx[:, -1:]], dim=1))
        assert not torch.allclose(forward[:, -1], backward[:, -1], atol=1e-6), positions


def test_weight_tying_shares_storage_and_can_be_turned_off():
    tied, untied = tiny(), tiny(tie_weights=False)
    assert tied.head.weight is tied.tok_emb.weight
    assert tied.head.weight.data_ptr() == tied.tok_emb.weight.data_ptr()
    assert untied.head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()
    V, C = 11, 16
    full = sum(p.numel() for p in untied.parameters())
    assert untied.param_count(non_embedding=False) == full
    assert tied.param_count(non_embedding=False) == full - V * C  # the shared matrix counted once
    assert tied.param_count() == full - V * C - 64 * C  # position table left out
    assert untied.param_count() == full - V * C - 64 * C  # input table left out, head counted
    assert tiny("rotary").param_count() == tiny("rotary").param_count(non_embedding=False)


def test_gpt2_initialisation():
    model = tiny(n_layer=8, n_embd=64, n_head=4, vocab_size=200)
    fc = torch.cat([b.mlp.fc.weight.flatten() for b in model.blocks])
    proj = torch.cat([b.mlp.proj.weight.flatten() for b in model.blocks]
                     + [b.attn.proj.weight.flatten() for b in model.blocks])
    assert fc.std().item() == pytest.approx(0.02, rel=0.05)
    assert proj.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert all(b.attn.qkv.bias.detach().abs().max() == 0 for b in model.blocks)


def test_no_bias_option_removes_every_bias():
    model = tiny(bias=False)
    assert not [n for n, _ in model.named_parameters() if n.endswith("bias")]
    logits, _ = model(tokens((1, 4)))
    assert logits.shape == (1, 4, 11)


@pytest.mark.parametrize("positions", POSITIONS)
def test_beam_search_uses_select_state_and_width_one_is_greedy(trained, positions):
    model, _ = trained[positions]
    prompt = tokens((5,), seed=4)
    best1, logp1 = beam_search(model, prompt, 12, beam_width=1)
    torch.testing.assert_close(best1, generate(model, prompt, 12, temperature=0.0), atol=0, rtol=0)
    best4, logp4 = beam_search(model, prompt, 12, beam_width=4)
    # A wider beam finds a continuation at least as probable here. The tolerance is float32's:
    # a batch of 4 beams and a batch of 1 give logits that differ in the last bits.
    assert logp4 >= logp1 - 1e-5

    # the log-probability beam search reports is the model's, recomputed without a cache
    with torch.no_grad():
        logits, _ = model(best4[None, :-1])
    log_probs = torch.log_softmax(logits[0].double(), dim=-1)
    recomputed = log_probs[torch.arange(4, 16), best4[5:]].sum().item()
    assert logp4 == pytest.approx(recomputed, abs=1e-5)


def test_select_state_reorders_and_repeats_batch_entries():
    model, idx = tiny(), tokens((3, 6))
    with torch.no_grad():
        _, state = model(idx)
        picked = model.select_state(state, torch.tensor([2, 2, 0]))
        next_token = torch.ones(3, 1, dtype=torch.long)
        a, _ = model(next_token, picked)  # continue the selected caches
        b, _ = model(next_token, model(idx[[2, 2, 0]])[1])  # caches built from the selected rows
    assert picked.batch_size == 3 and picked.length == 6
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("positions", POSITIONS)
def test_training_on_a_markov_chain_brings_the_loss_well_below_uniform(trained, positions):
    _, history = trained[positions]
    # Two successors per token: about log 2 nats are left to learn at best (the chain's
    # entropy rate), against log 11 = 2.40 for guessing uniformly.
    assert history.train[0]["loss"] > math.log(V) - 0.2
    assert history.best_val_loss < 0.5 * math.log(V)
    assert history.best_val_loss < CHAIN.entropy_rate + 0.3


@pytest.mark.parametrize("changes, message", [
    (dict(n_embd=30, n_head=4), "divisible by n_head"),
    (dict(n_layer=0), "n_layer must be an integer >= 1"),
    (dict(positions="sinusoidal"), "positions"),
    (dict(positions="rotary", n_embd=6, n_head=2), "even"),
    (dict(dropout=1.0), "dropout"),
    (dict(rope_base=1.0), "rope_base"),
    (dict(norm="batchnorm"), "norm must be one of"),
    (dict(mlp="relu"), "mlp must be one of"),
    (dict(n_kv_head=0), "n_kv_head must be an integer >= 1"),
    (dict(n_head=4, n_kv_head=3), "divisible by n_kv_head"),
    (dict(n_head=2, n_kv_head=4), "divisible by n_kv_head"),
])
def test_bad_config_is_rejected_with_a_clear_message(changes, message):
    options = dict(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8) | changes
    with pytest.raises(ValueError, match=message):
        GPTConfig(**options)


@pytest.mark.parametrize("changes, message", [
    (dict(vocab_size=2.5), "vocab_size must be an integer"),
    (dict(block_size=True), "block_size must be an integer"),
    (dict(n_kv_head=1.0), "n_kv_head must be an integer"),
    (dict(dropout="0.1"), "dropout must be a number"),
])
def test_wrong_types_in_the_config_raise_type_error(changes, message):
    options = dict(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8) | changes
    with pytest.raises(TypeError, match=message):
        GPTConfig(**options)


def test_numpy_integers_are_accepted_and_stored_as_plain_ints():
    config = GPTConfig(vocab_size=np.int64(11), block_size=np.int32(16), n_layer=np.int64(2), n_head=2,
                       n_embd=8, n_kv_head=np.int64(1), dropout=np.float32(0.25))
    assert (config.n_layer, config.block_size, config.n_kv_head) == (2, 16, 1)
    assert type(config.n_layer) is int and type(config.vocab_size) is int and type(config.dropout) is float
    assert GPT(config)(tokens((1, 3)))[0].shape == (1, 3, 11)


@pytest.mark.parametrize("positions", POSITIONS)
def test_too_long_input_is_rejected_with_a_clear_message(positions):
    model = tiny(positions, block_size=8)
    with pytest.raises(ValueError, match="block_size=8"):
        model(tokens((1, 9)))
    with torch.no_grad():
        _, state = model(tokens((1, 6)))
        model(tokens((1, 2)), state)  # exactly block_size in all: fine
        with pytest.raises(ValueError, match="6 cached \\+ 3 new"):
            model(tokens((1, 3)), state)
    with pytest.raises(ValueError, match="block_size"):
        generate(model, tokens((4,)), 10)


def test_bad_idx_and_state_are_rejected():
    model = tiny()
    with pytest.raises(TypeError, match="torch.long"):
        model(tokens((1, 4)).int())
    with pytest.raises(ValueError, match="shape \\(B, T\\)"):
        model(tokens((4,)))
    with pytest.raises(ValueError, match="token ids must be in \\[0, 10\\]"):
        model(torch.tensor([[3, 11]]))
    with torch.no_grad():
        _, state = model(tokens((2, 4)))
    with pytest.raises(ValueError, match="batch of 2"):
        model(tokens((3, 1)), state)
    with pytest.raises(TypeError, match="KVCache"):
        model(tokens((2, 1)), [(torch.zeros(1), torch.zeros(1))])
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT(dict(vocab_size=11))


@pytest.mark.parametrize("positions", POSITIONS)
def test_attention_maps_reproduce_the_fused_attention(positions):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16, positions=positions))
    idx = tokens((3, 9), seed=1)
    maps = attention_maps(model, idx)
    assert maps.shape == (2, 3, 2, 9, 9)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 3, 2, 9))
    assert torch.all(maps.triu(diagonal=1) == 0)  # nothing from the future
    # Layer 0's weights applied to its values give the same output as the fused kernel.
    x = model.blocks[0].ln_1(model.tok_emb(idx) + (model.pos_emb.weight[:9] if model.pos_emb else 0))
    q, k, v = model.blocks[0].attn.heads(x, 0)
    fused = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(maps[0] @ v, fused, atol=1e-6, rtol=1e-5)


# --- The Llama-style block: RMSNorm, SwiGLU, no biases, grouped-query attention ---

def llama(n_kv_head=None, positions="rotary", seed=0, **kwargs) -> GPT:
    return tiny(positions, seed=seed, n_head=4, n_embd=32, norm="rmsnorm", mlp="swiglu", bias=False,
                n_kv_head=n_kv_head, **kwargs)


def test_rmsnorm_divides_by_the_root_mean_square():
    x = torch.randn(3, 5, 8)
    norm = RMSNorm(8)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
    expected = x / x.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt() * norm.weight
    torch.testing.assert_close(norm(x), expected)
    unit = RMSNorm(8)(x)
    torch.testing.assert_close(unit.pow(2).mean(-1), torch.ones(3, 5), atol=1e-4, rtol=0)
    assert not torch.allclose(unit.mean(-1), torch.zeros(3, 5), atol=1e-3)  # the mean is not removed


def test_swiglu_is_gated_and_about_as_large_as_the_gelu_mlp():
    config = GPTConfig(n_embd=48, n_head=4, mlp="swiglu", bias=False)
    mlp = SwiGLU(config)
    assert mlp.gate.out_features == mlp.up.out_features == 8 * math.ceil(48 / 3) == 128
    x = torch.randn(2, 3, 48)
    expected = (F.silu(x @ mlp.gate.weight.T) * (x @ mlp.up.weight.T)) @ mlp.proj.weight.T
    torch.testing.assert_close(mlp(x), expected)
    swiglu_params = sum(p.numel() for p in mlp.parameters())
    gelu_params = 2 * 4 * 48 * 48
    assert abs(swiglu_params - gelu_params) <= 0.05 * gelu_params


@pytest.mark.parametrize("n_kv_head", [1, 2, 4])
def test_grouped_query_attention_shapes_and_parameter_counts(n_kv_head):
    model = llama(n_kv_head)
    C, hs, L, V = 32, 8, 2, 11
    assert not [n for n, _ in model.named_parameters() if n.endswith("bias")]
    assert all(isinstance(m, RMSNorm) for m in (model.blocks[0].ln_1, model.blocks[0].ln_2, model.ln_f))
    with torch.no_grad():
        logits, cache = model(tokens((3, 10)))
    assert logits.shape == (3, 10, V)
    for k, v in cache.layers:  # the cache holds n_kv_head heads: the memory GQA saves
        assert k.shape == v.shape == (3, n_kv_head, 10, hs)
    attention = C * C + 2 * C * n_kv_head * hs + C * C  # W_q, W_k and W_v, W_o
    mlp = 3 * C * 8 * math.ceil(C / 3)
    per_block = attention + mlp + 2 * C  # two RMSNorm gains
    assert model.param_count(non_embedding=False) == L * per_block + C + V * C  # + final norm + tied table
    assert "n_kv_head=" + str(n_kv_head) in repr(model) and "mlp='swiglu'" in repr(model)


def test_grouped_query_attention_shares_each_key_value_head_across_its_group():
    # Build a GQA model's attention from a full multi-head one whose kv heads are copied per group:
    # the two must agree, which pins down which query heads share which key/value head.
    gqa = llama(n_kv_head=2).blocks[0].attn
    full = llama(n_kv_head=4).blocks[0].attn
    C, hs = 32, 8
    Wq, Wk, Wv = gqa.qkv.weight.split([C, 2 * hs, 2 * hs], dim=0)
    repeat = lambda W: W.view(2, hs, C).repeat_interleave(2, dim=0).reshape(4 * hs, C)
    with torch.no_grad():
        full.qkv.weight.copy_(torch.cat([Wq, repeat(Wk), repeat(Wv)]))
        full.proj.weight.copy_(gqa.proj.weight)
        x = torch.randn(2, 7, C)
        torch.testing.assert_close(gqa(x, None)[0], full(x, None)[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("n_kv_head", [1, 2, 4])
@pytest.mark.parametrize("positions", POSITIONS)
def test_llama_style_cache_equals_the_full_forward_pass(n_kv_head, positions):
    model, idx = llama(n_kv_head, positions), tokens((2, 15))
    with torch.no_grad():
        full, _ = model(idx)
        logits, state = model(idx[:, :6])
        pieces = [logits]
        for t in range(6, 15):
            logits, state = model(idx[:, t:t + 1], state)
            pieces.append(logits)
        torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
        first, state = model(idx[:, :4])
        second, _ = model(idx[:, 4:], state)  # a chunk after a cache: the offset mask
        torch.testing.assert_close(torch.cat([first, second], dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_kv_head", [1, 4])
def test_llama_style_model_is_causal_and_its_attention_maps_match(n_kv_head):
    model, idx = llama(n_kv_head), tokens((2, 9))
    changed = idx.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 11
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=0, rtol=0)
    maps = attention_maps(model, idx)
    assert maps.shape == (2, 2, 4, 9, 9)
    attn = model.blocks[0].attn
    x = model.blocks[0].ln_1(model.tok_emb(idx))
    q, k, v = attn.heads(x, 0)
    fused = F.scaled_dot_product_attention(q, attn.expand_kv(k), attn.expand_kv(v), is_causal=True)
    torch.testing.assert_close(maps[0] @ attn.expand_kv(v), fused, atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def trained_llama(one_thread):
    """A Llama-style GPT with multi-query attention trained for 100 steps on the Markov chain."""
    model = llama(n_kv_head=1, seed=0, vocab_size=V, block_size=64)
    history = train(model.train(), chain_batch, CHAIN_TRAINING, device="cpu")
    return model.eval(), history


def test_llama_style_model_learns_and_greedy_output_does_not_depend_on_the_cache(trained_llama):
    model, history = trained_llama
    assert history.best_val_loss < CHAIN.entropy_rate + 0.3
    prompt = tokens((8,), seed=3)
    with_cache = generate(model, prompt, 40, temperature=0.0)
    assert len(set(with_cache[8:].tolist())) > 2
    torch.testing.assert_close(with_cache, generate(model, prompt, 40, temperature=0.0, use_cache=False),
                               atol=0, rtol=0)
    torch.testing.assert_close(with_cache, greedy_without_cache(model, prompt, 40), atol=0, rtol=0)


def test_default_block_is_unchanged_by_the_new_options():
    model = tiny()
    block = model.blocks[0]
    assert isinstance(block.ln_1, torch.nn.LayerNorm) and block.ln_1.bias is not None
    assert hasattr(block.mlp, "fc") and block.mlp.fc.out_features == 4 * 16
    assert block.attn.qkv.out_features == 3 * 16
    assert model.config.n_kv_head is None and model.config.kv_heads == 2
    assert "n_kv_head" not in repr(model)

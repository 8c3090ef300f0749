"""GPT: the KV cache agrees with the full forward pass, causality, tying, init, errors, and that it learns."""
import math

import pytest
import torch
import torch.nn.functional as F

from lmcourse.data.synthetic import MarkovSource
from lmcourse.generate import beam_search, generate
from lmcourse.models.gpt import GPT, GPTConfig, KVCache, attention_maps
from lmcourse.train import TrainConfig, train

POSITIONS = ["learned", "rotary"]


pytestmark = pytest.mark.usefixtures("one_thread")


V = 11
CHAIN = MarkovSource(vocab_size=V, order=1, branching=2, seed=0)


@pytest.fixture(scope="module")
def trained(one_thread):
    """A small GPT of each position kind trained for 100 steps on an order-1 Markov chain."""
    data = {"train": torch.from_numpy(CHAIN.sample(20_000, seed=1)),
            "val": torch.from_numpy(CHAIN.sample(4_000, seed=2))}

    def get_batch(split, generator, batch_size=16, block=32):
        series = data[split]
        starts = torch.randint(len(series) - block - 1, (batch_size,), generator=generator)
        x = torch.stack([series[s:s + block] for s in starts])
        y = torch.stack([series[s + 1:s + block + 1] for s in starts])
        return x, y

    models = {}
    for positions in POSITIONS:
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=V, block_size=64, n_layer=2, n_head=2, n_embd=32,
                              positions=positions))
        config = TrainConfig(steps=100, lr=3e-3, warmup_steps=10, eval_interval=100, eval_batches=4,
                             progress=False)
        history = train(model, get_batch, config, device="cpu")
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
    (dict(n_layer=0), "n_layer"),
    (dict(vocab_size=2.5), "vocab_size"),
    (dict(block_size=True), "block_size"),
    (dict(positions="sinusoidal"), "positions"),
    (dict(positions="rotary", n_embd=6, n_head=2), "even"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_config_is_rejected_with_a_clear_message(changes, message):
    options = dict(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8) | changes
    with pytest.raises(ValueError, match=message):
        GPTConfig(**options)


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

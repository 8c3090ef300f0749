"""Temperature, top-k, top-p and sampling, checked on hand-made distributions."""
import math

import numpy as np
import pytest
import torch

from lmcourse.generate import (
    apply_temperature,
    sample_next,
    sampling_probs,
    top_k_filter,
    top_p_filter,
)


def logits_of(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float64))


def kept(filtered):
    """The token ids a filter left in play, as a set (1-D) or list of sets (2-D)."""
    mask = torch.isfinite(filtered)
    if mask.ndim == 1:
        return set(torch.nonzero(mask).flatten().tolist())
    return [set(torch.nonzero(row).flatten().tolist()) for row in mask]


def nucleus_by_hand(probs, p):
    """The smallest prefix of the tokens sorted by probability (ties: lower id first) reaching p."""
    order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    total, chosen = 0.0, set()
    for i in order:
        chosen.add(i)
        total += probs[i]
        if total >= p:
            break
    return chosen


# -- temperature -------------------------------------------------------------

def test_temperature_divides_logits_and_keeps_the_ranking():
    z = torch.tensor([2.0, -1.0, 0.5])
    assert torch.allclose(apply_temperature(z, 0.5), z / 0.5)
    assert torch.equal(apply_temperature(z, 3.0).argsort(), z.argsort())


def test_low_temperature_tends_to_greedy_and_high_to_uniform():
    z = torch.tensor([1.0, 3.0, 2.0, 0.0])
    cold = torch.softmax(apply_temperature(z, 0.01), -1)
    hot = torch.softmax(apply_temperature(z, 1000.0), -1)
    assert cold[1] > 0.999
    assert torch.allclose(hot, torch.full((4,), 0.25), atol=1e-3)
    # entropy falls monotonically as the temperature falls
    ents = [float(-(q * q.log()).sum()) for q in
            (torch.softmax(apply_temperature(z, t), -1) for t in (4.0, 2.0, 1.0, 0.5, 0.25))]
    assert all(a > b for a, b in zip(ents, ents[1:]))


@pytest.mark.parametrize("t", [0, -1.0, float("nan"), float("inf")])
def test_apply_temperature_rejects_non_positive_or_non_finite(t):
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(torch.zeros(3), t)


# -- top-k -------------------------------------------------------------------

def test_top_k_keeps_the_k_largest():
    z = torch.tensor([0.1, 2.0, -1.0, 1.5, 0.3])
    assert kept(top_k_filter(z, 2)) == {1, 3}
    out = top_k_filter(z, 2)
    assert torch.equal(out[[1, 3]], z[[1, 3]])  # kept logits are unchanged


def test_top_k_breaks_ties_by_lower_id_and_keeps_exactly_k():
    z = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.0])
    assert kept(top_k_filter(z, 1)) == {1}
    assert kept(top_k_filter(z, 2)) == {1, 2}


def test_top_k_at_least_vocab_size_keeps_everything_and_rows_are_independent():
    z = torch.tensor([[0.0, 1.0, 2.0], [5.0, 4.0, 3.0]])
    assert torch.equal(top_k_filter(z, 3), z)
    assert torch.equal(top_k_filter(z, 10), z)
    assert kept(top_k_filter(z, 1)) == [{2}, {0}]
    assert kept(top_k_filter(np.array([3.0, 1.0]), np.int64(1))) == {0}  # numpy in, numpy int k


@pytest.mark.parametrize("k, error", [
    (0, ValueError), (-2, ValueError), (1.5, TypeError), (2.0, TypeError), (True, TypeError),
    (None, TypeError),
])
def test_top_k_rejects_bad_k(k, error):
    with pytest.raises(error, match="top_k must be an integer >= 1"):
        top_k_filter(torch.zeros(4), k)


# -- top-p -------------------------------------------------------------------

@pytest.mark.parametrize("p, expected", [
    (0.3, {0}), (0.6, {0, 1}), (0.81, {0, 1, 2}), (0.97, {0, 1, 2, 3}), (1.0, {0, 1, 2, 3}),
])
def test_top_p_keeps_the_smallest_set_reaching_p(p, expected):
    assert kept(top_p_filter(logits_of([0.5, 0.3, 0.15, 0.05]), p)) == expected


def test_top_p_keeps_the_token_that_crosses_p_and_the_top_token_always():
    probs = [0.1, 0.6, 0.3]
    assert kept(top_p_filter(logits_of(probs), 0.65)) == {1, 2}  # 0.6 < 0.65, so 0.3 joins
    assert kept(top_p_filter(logits_of(probs), 1e-9)) == {1}


def test_top_p_stops_when_the_kept_mass_reaches_p_exactly():
    # Uniform over 4 tokens: the running totals 0.25, 0.5, 0.75 are exact in float64,
    # so each p below lands on a boundary. Two tokens already reach 0.5: a third
    # would make the set larger than the smallest one whose total is >= p.
    z = torch.zeros(4)
    assert kept(top_p_filter(z, 0.25)) == {0}
    assert kept(top_p_filter(z, 0.5)) == {0, 1}
    assert kept(top_p_filter(z, 0.75)) == {0, 1, 2}
    assert torch.equal(sampling_probs(torch.zeros(8), top_p=0.25),
                       torch.tensor([0.5, 0.5, 0, 0, 0, 0, 0, 0]))


def test_top_p_ties_go_to_the_lower_id():
    assert kept(top_p_filter(logits_of([0.4, 0.2, 0.2, 0.2]), 0.5)) == {0, 1}
    assert kept(top_p_filter(logits_of([0.2, 0.2, 0.4, 0.2]), 0.5)) == {0, 2}
    assert kept(top_p_filter(logits_of([0.2, 0.2, 0.4, 0.2]), 0.7)) == {0, 1, 2}
    assert kept(top_p_filter(torch.zeros(5), 0.5)) == {0, 1, 2}  # uniform: 3 x 0.2 >= 0.5


def test_top_p_one_keeps_every_token_even_with_tiny_probabilities():
    z = torch.tensor([0.0, -60.0, -80.0, -100.0])  # exp(-100) is far below float round-off
    assert torch.equal(top_p_filter(z, 1.0), z)


def test_top_p_matches_brute_force_on_random_rows():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(50, 12, generator=gen, dtype=torch.float64) * 2
    z[:, :3] = z[:, 3:4]  # plant exact ties in every row
    for p in (0.1, 0.5, 0.9, 0.99):
        got = kept(top_p_filter(z, p))
        probs = torch.softmax(z, -1).tolist()
        assert got == [nucleus_by_hand(row, p) for row in probs]


def test_top_p_leaves_already_removed_tokens_removed():
    z = torch.tensor([1.0, float("-inf"), 0.5, float("-inf")])
    assert kept(top_p_filter(z, 0.999)) == {0, 2}


@pytest.mark.parametrize("p", [0.0, -0.1, 1.01, float("nan")])
def test_top_p_rejects_p_outside_0_1(p):
    with pytest.raises(ValueError, match=r"top_p must be a finite number in \(0.0, 1.0\]"):
        top_p_filter(torch.zeros(3), p)


@pytest.mark.parametrize("p", [True, "0.5", None])
def test_top_p_rejects_a_p_that_is_not_a_number(p):
    with pytest.raises(TypeError, match="top_p must be a number"):
        top_p_filter(torch.zeros(3), p)


# -- sampling ----------------------------------------------------------------

def draw_frequencies(probs, n=40_000, seed=0, **options):
    z = logits_of(probs).expand(n, len(probs))
    ids = sample_next(z, generator=torch.Generator().manual_seed(seed), **options)
    assert ids.shape == (n,)
    return np.bincount(ids.numpy(), minlength=len(probs)) / n


def test_sampling_frequencies_match_the_probabilities():
    probs = [0.5, 0.3, 0.15, 0.05]
    freq = draw_frequencies(probs)
    # binomial standard error is at most sqrt(0.25 / 40000) = 0.0025: allow 4 of them
    assert np.allclose(freq, probs, atol=0.01)


def test_sampling_after_top_k_and_top_p_renormalises_the_kept_tokens():
    probs = [0.5, 0.3, 0.15, 0.05]
    assert np.allclose(draw_frequencies(probs, top_k=2), [0.625, 0.375, 0, 0], atol=0.01)
    assert np.allclose(draw_frequencies(probs, top_p=0.7), [0.625, 0.375, 0, 0], atol=0.01)
    expected = np.array([0.5, 0.3, 0.15, 0.05]) ** 2  # temperature 0.5 squares the probabilities
    assert np.allclose(draw_frequencies(probs, temperature=0.5), expected / expected.sum(), atol=0.01)


def test_sampling_probs_match_the_filters():
    z = logits_of([0.5, 0.3, 0.15, 0.05])
    q = sampling_probs(z, temperature=2.0, top_k=3, top_p=0.5)
    ref = torch.softmax(top_p_filter(top_k_filter(z / 2.0, 3), 0.5), -1)
    assert torch.allclose(q, ref)
    assert math.isclose(float(q.sum()), 1.0, rel_tol=1e-9)


def test_temperature_zero_is_greedy_with_ties_to_the_lower_id():
    z = torch.tensor([[0.0, 2.0, 2.0, 1.0], [5.0, 0.0, 0.0, 5.0]])
    assert sample_next(z, temperature=0).tolist() == [1, 0]
    assert torch.equal(sampling_probs(z, temperature=0), torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0]]))


def test_sample_next_shapes_and_reproducibility():
    z = torch.randn(7)
    one = sample_next(z, generator=torch.Generator().manual_seed(3))
    assert one.ndim == 0 and 0 <= int(one) < 7
    a = sample_next(torch.zeros(5, 100), generator=torch.Generator().manual_seed(1))
    b = sample_next(torch.zeros(5, 100), generator=torch.Generator().manual_seed(1))
    assert a.shape == (5,) and torch.equal(a, b)


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 3, 4), "shape"),
    (torch.zeros(0), "shape"),
    (torch.tensor([0.0, float("nan")]), "NaN"),
    (torch.tensor([0.0, float("inf")]), r"\+inf"),
    (torch.full((3,), float("-inf")), "-inf"),
])
def test_bad_logits_get_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        sample_next(bad)


@pytest.mark.parametrize("options, message", [
    ({"temperature": -0.5}, "temperature"),
    ({"temperature": 0, "top_k": 0}, "top_k"),  # checked even though greedy ignores it
    ({"top_p": 1.5}, "top_p"),
])
def test_bad_options_get_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        sample_next(torch.zeros(4), **options)


# -- the lesson's sampling figure and widget (lmcourse.viz) ---------------------

def test_sampling_figure_has_one_panel_per_setting():
    import matplotlib.pyplot as plt

    from lmcourse.viz import plot_sampling_distributions

    z = logits_of([0.5, 0.3, 0.15, 0.05])
    probs = {"T=1": sampling_probs(z), "top-k=2": sampling_probs(z, top_k=2)}
    fig = plot_sampling_distributions(probs, labels=["a", "b", " ", "\n"], top=3)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["T=1\n4 of 4 tokens kept", "top-k=2\n2 of 4 tokens kept"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b", "␣"]
    heights = [bar.get_height() for bar in fig.axes[1].patches]
    assert np.allclose(heights, [0.625, 0.375, 0.0])
    plt.close(fig)
    with pytest.raises(ValueError, match="one label per token"):
        plot_sampling_distributions(probs, labels=["a"])


def test_sampling_widget_builds_without_a_front_end_and_reacts_to_sliders():
    from lmcourse.viz import sampling_widget

    calls = []
    widget = sampling_widget(logits_of([0.5, 0.3, 0.15, 0.05]), labels=list("abcd"),
                             sample=lambda t, k, p: calls.append((t, k, p)) or "text")
    assert "Jupyter" in repr(widget)  # what a static page shows instead of sliders
    temperature, top_k, top_p = widget.children[0].children
    top_k.value = 2
    top_p.value = 0.5
    temperature.value = 0.0
    assert calls == [(1.0, None, None), (1.0, 2, None), (1.0, 2, 0.5), (0.0, 2, 0.5)]


# -- generate, greedy and beam search on a hand-built model --------------------

from lmcourse.generate import beam_search, generate, greedy, stream  # noqa: E402


class TableModel(torch.nn.Module):
    """A bigram "model" with a fixed transition table, keeping the generation contract.

    Its state is the number of tokens read so far per sequence, so that a
    missing or wrong ``select_state`` shows, and ``calls`` records every input shape.
    """

    def __init__(self, table):
        super().__init__()
        self.log_table = torch.log(torch.tensor(table, dtype=torch.float64))
        self.calls = []

    def forward(self, idx, state=None):
        self.calls.append(tuple(idx.shape))
        seen = torch.zeros(idx.shape[0], dtype=torch.long) if state is None else state
        return self.log_table[idx], seen + idx.shape[1]

    def select_state(self, state, index):
        return state[index]


# From token 0, greedy takes 1 (0.6) and then at best 0.3: 0.18 in all.
# Going through 2 (0.4) leads to 3 with 0.9: 0.36, twice as likely.
TRAP = [
    [0.0, 0.6, 0.4, 0.0],
    [0.3, 0.3, 0.2, 0.2],
    [0.05, 0.0, 0.05, 0.9],
    [0.25, 0.25, 0.25, 0.25],
]


def test_greedy_falls_into_the_trap_and_beam_search_does_not():
    model = TableModel(TRAP)
    prompt = torch.tensor([0])
    assert greedy(model, prompt, 2).tolist() == [0, 1, 0]  # the lower id wins the 0.3 tie
    seq, log_prob = beam_search(model, prompt, 2, beam_width=1)
    assert seq.tolist() == [0, 1, 0] and math.isclose(log_prob, math.log(0.18))
    seq, log_prob = beam_search(model, prompt, 2, beam_width=2)
    assert seq.tolist() == [0, 2, 3] and math.isclose(log_prob, math.log(0.36))


def test_generate_reads_the_prompt_once_then_one_token_per_step():
    model = TableModel(TRAP)
    out = generate(model, torch.tensor([[0, 1, 2], [3, 3, 0]]), 3, temperature=0)
    assert out.shape == (2, 6)
    assert out.tolist() == [[0, 1, 2, 3, 0, 1], [3, 3, 0, 1, 0, 1]]
    assert model.calls == [(2, 3), (2, 1), (2, 1)]  # the last new token needs no forward pass


def test_without_the_cache_every_step_rereads_the_whole_prefix_for_the_same_tokens():
    prompt = torch.tensor([[0, 1, 2], [3, 3, 0]])
    cached = generate(TableModel(TRAP), prompt, 3, temperature=0)
    model = TableModel(TRAP)
    assert generate(model, prompt, 3, temperature=0, use_cache=False).tolist() == cached.tolist()
    assert model.calls == [(2, 3), (2, 4), (2, 5)]


def test_stream_yields_one_batch_of_tokens_per_step_and_checks_options_at_once():
    model = TableModel(TRAP)
    tokens = stream(model, torch.tensor([[0, 1, 2], [3, 3, 0]]), 3, temperature=0)
    assert model.calls == []  # nothing runs until the first token is asked for
    assert [t.tolist() for t in tokens] == [[3, 1], [0, 0], [1, 1]]
    with pytest.raises(ValueError, match="temperature"):
        stream(model, torch.tensor([0]), 3, temperature=-1)  # raised here, not at the first next()


def test_stream_keeps_no_grad_and_eval_mode_to_itself():
    model = TableModel(TRAP).train()
    tokens = stream(model, torch.tensor([0]), 3)
    next(tokens)
    assert torch.is_grad_enabled()  # between tokens the caller's grad mode is back
    assert not model.training  # the model stays in eval mode while the stream is open
    tokens.close()
    assert model.training


def test_generate_shapes_and_edge_cases():
    model = TableModel(TRAP)
    assert generate(model, torch.tensor([2]), 0).tolist() == [2]
    assert model.calls == []  # nothing to generate: the model is not even run
    assert generate(model, [1, 2], 5).shape == (7,)  # a list is a prompt too
    assert generate(model, torch.tensor([[1], [2]]), 5).shape == (2, 6)
    seq, log_prob = beam_search(model, torch.tensor([1]), 0)
    assert seq.tolist() == [1] and log_prob == 0.0


def test_generate_samples_from_the_filtered_distribution():
    model = TableModel(TRAP)
    g = torch.Generator().manual_seed(0)
    # top_k=1 after token 1 leaves token 0 only (lower id among the 0.3 tie).
    out = generate(model, torch.ones(200, 1, dtype=torch.long), 1, top_k=1, generator=g)
    assert set(out[:, 1].tolist()) == {0}
    out = generate(model, torch.zeros(4000, 1, dtype=torch.long), 1, generator=g)
    assert abs((out[:, 1] == 1).double().mean().item() - 0.6) < 0.03


def test_beam_search_never_does_worse_than_greedy_on_random_tables():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        table = torch.softmax(3 * torch.randn(5, 5, generator=g, dtype=torch.float64), -1).tolist()
        model = TableModel(table)
        prompt = torch.tensor([int(torch.randint(5, (1,), generator=g))])
        greedy_seq = greedy(model, prompt, 4).tolist()
        greedy_score = sum(math.log(table[a][b]) for a, b in zip(greedy_seq[:-1], greedy_seq[1:]))
        seq, score = beam_search(model, prompt, 4, beam_width=3)
        recomputed = sum(math.log(table[a][b]) for a, b in zip(seq[:-1].tolist(), seq[1:].tolist()))
        assert math.isclose(score, recomputed, abs_tol=1e-9)
        assert score >= greedy_score - 1e-12


@pytest.mark.parametrize("call, error, message", [
    (lambda m: generate(m, torch.tensor([], dtype=torch.long), 3), ValueError, "T >= 1"),
    (lambda m: generate(m, torch.tensor([0.5]), 3), TypeError, "integer token ids"),
    (lambda m: generate(m, torch.tensor([0]), -1), ValueError, "max_new_tokens must be an integer >= 0"),
    (lambda m: generate(m, torch.tensor([0]), 3.0), TypeError, "max_new_tokens must be an integer >= 0"),
    (lambda m: generate(m, torch.tensor([0]), True), TypeError, "max_new_tokens must be an integer >= 0"),
    (lambda m: beam_search(m, torch.tensor([0]), 2.5), TypeError, "max_new_tokens"),
    (lambda m: generate(m, torch.tensor([0]), 3, temperature=-1), ValueError, "temperature"),
    (lambda m: generate(m, torch.tensor([0]), 3, top_p=0), ValueError, "top_p"),
    (lambda m: beam_search(m, torch.tensor([[0]]), 3), ValueError, "one 1-D prompt"),
    (lambda m: beam_search(m, torch.tensor([0]), 3, beam_width=0), ValueError,
     "beam_width must be an integer >= 1"),
    (lambda m: beam_search(m, torch.tensor([0]), 3, beam_width=2.0), TypeError, "beam_width"),
    (lambda m: beam_search(m, torch.tensor([0]), 3, beam_width=True), TypeError, "beam_width"),
    (lambda m: generate(m, torch.tensor([0]), 3, top_k=0), ValueError, "top_k"),
    (lambda m: generate(lambda idx, state: idx.float(), torch.tensor([0]), 3), TypeError,
     r"must return \(logits, state\)"),
    (lambda m: generate(lambda idx, state: (idx.float(), None), torch.tensor([0]), 3), ValueError,
     r"shape \(B, T, V\)"),
    (lambda m: beam_search(lambda idx, state: (idx, state), torch.tensor([0]), 3), TypeError,
     "select_state"),
])
def test_generation_gets_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(TableModel(TRAP))

"""The in-context learning task of lesson 11: structure, held-out split, blinding, scoring."""
import numpy as np
import pytest
import torch

from lmcourse.in_context import (IGNORE, MappingTask, accuracy_by_k, blind, examples_seen, lookup_logits,
                                 model_accuracy_by_k, prompt_majority_logits)


@pytest.fixture(scope="module")
def task():
    return MappingTask(n_inputs=6, n_outputs=5, n_pairs=12, held_out=64, seed=3)


def oracle_logits(episodes, task):
    """Logits of a predictor that knows each sequence's mapping: a one-hot on the right output."""
    tokens = episodes.tokens
    logits = torch.zeros(*tokens.shape, task.vocab_size)
    answers = task.n_inputs + episodes.mappings.gather(1, tokens[:, 0::2])
    logits[:, 0::2].scatter_(2, answers[..., None], 1.0)
    return logits


def test_sequences_alternate_inputs_and_their_mapped_outputs(task):
    ep = task.sample(50, torch.Generator().manual_seed(0))
    assert ep.tokens.shape == (50, 24) and ep.mappings.shape == (50, 6)
    xs, ys = ep.tokens[:, 0::2], ep.tokens[:, 1::2]
    assert ((0 <= xs) & (xs < 6)).all() and ((6 <= ys) & (ys < 11)).all()
    assert torch.equal(ys - 6, ep.mappings.gather(1, xs))  # y_i = f(x_i), in every pair
    assert (examples_seen(ep.tokens, task) > 0).any()  # inputs repeat: there is something to look up
    y = task.targets(ep.tokens)
    assert torch.equal(y[:, 0::2], ys) and (y[:, 1::2] == IGNORE).all()


def test_sampling_is_seeded(task):
    a = task.sample(8, torch.Generator().manual_seed(5)).tokens
    b = task.sample(8, torch.Generator().manual_seed(5)).tokens
    assert torch.equal(a, b)
    assert torch.equal(MappingTask(6, 5, 12, 64, seed=3).test_mappings, task.test_mappings)


def test_held_out_mappings_never_appear_in_training(task):
    assert len(set(task.codes(task.test_mappings).tolist())) == 64  # distinct
    # 5**6 = 15625 mappings and 64 held out: 20000 draws would hit one about 80 times if unguarded.
    train = task.sample(20_000, torch.Generator().manual_seed(1), "train").mappings
    assert not task.is_held_out(train).any()
    test = task.sample(500, torch.Generator().manual_seed(1), "test").mappings
    assert task.is_held_out(test).all()
    x, _ = task.get_batch(7)("val", torch.Generator().manual_seed(0))
    assert x.shape == (7, 24)


def test_examples_seen_counts_earlier_pairs_with_the_same_input():
    task = MappingTask(n_inputs=3, n_outputs=3, n_pairs=5, held_out=2)
    tokens = torch.tensor([[0, 3, 1, 4, 0, 3, 2, 5, 0, 3]])
    assert examples_seen(tokens, task).tolist() == [[0, 0, 1, 0, 2]]


def test_blind_hides_every_output_and_keeps_the_queries(task):
    tokens = task.sample(10, torch.Generator().manual_seed(2)).tokens
    hidden = blind(tokens, task)
    assert (hidden[:, 1::2] == task.hidden).all() and torch.equal(hidden[:, 0::2], tokens[:, 0::2])
    x, y = task.get_batch(10, blinded=True)("train", torch.Generator().manual_seed(2))
    assert (x[:, 1::2] == task.hidden).all() and torch.equal(y, task.targets(tokens))


def test_a_perfect_predictor_scores_one_at_every_k(task):
    ep = task.sample(400, torch.Generator().manual_seed(4), "test")
    result = accuracy_by_k(oracle_logits(ep, task), ep.tokens, task, max_k=3)
    assert result["k"].tolist() == [0, 1, 2, 3] and (result["count"] > 0).all()
    assert result["count"].sum() == 400 * 12
    np.testing.assert_array_equal(result["accuracy"], 1.0)


def test_a_constant_predictor_scores_the_share_of_its_answer(task):
    ep = task.sample(400, torch.Generator().manual_seed(6), "test")
    logits = torch.zeros(*ep.tokens.shape, task.vocab_size)
    logits[..., task.n_inputs + 2] = 1.0  # always the third output
    logits[..., 0] = 9.0  # an input symbol scores higher, but inputs are no answers
    result = accuracy_by_k(logits, ep.tokens, task, max_k=2)
    k = examples_seen(ep.tokens, task).clamp(max=2)
    is_two = ep.tokens[:, 1::2] == task.n_inputs + 2
    expected = [is_two[k == i].double().mean().item() for i in range(3)]
    np.testing.assert_allclose(result["accuracy"], expected)
    assert abs(result["accuracy"][0] - 1 / 5) < 0.03  # about chance: held-out outputs are uniform


def test_model_accuracy_runs_a_model_on_what_it_was_trained_to_see(task):
    class Lookup(torch.nn.Module):
        """Copies the output of the latest earlier pair with the same input."""

        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(()))

        def forward(self, idx):
            logits = torch.zeros(*idx.shape, task.vocab_size)
            for b in range(idx.shape[0]):
                last = {}
                for i in range(0, idx.shape[1], 2):
                    x = int(idx[b, i])
                    if x in last:  # else all zeros: the argmax is the first output
                        logits[b, i, last[x]] = 1.0
                    last[x] = int(idx[b, i + 1])
            return logits, None

    ep = task.sample(60, torch.Generator().manual_seed(7), "test")
    seeing = model_accuracy_by_k(Lookup(), ep.tokens, task, max_k=2)
    assert (seeing["accuracy"][1:] == 1.0).all() and seeing["accuracy"][0] < 0.5
    blinded = model_accuracy_by_k(Lookup(), ep.tokens, task, max_k=2, blinded=True)
    assert (blinded["accuracy"][1:] < 0.5).all()  # it copies HIDDEN, which is never an answer
    # The package's vectorised rule gives the loop's answers exactly.
    assert torch.equal(lookup_logits(ep.tokens, task), Lookup()(ep.tokens)[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_outputs=1), "n_outputs must be at least 2"),
    (dict(n_pairs=1), "n_pairs must be at least 2"),
    (dict(n_inputs=2, n_outputs=2, held_out=4), "too few to hold out"),
    (dict(n_inputs=0), "MappingTask.n_inputs must be an integer >= 1"),
    (dict(n_pairs=2.5), "MappingTask.n_pairs must be an integer"),
])
def test_bad_task_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MappingTask(**kwargs)


def test_bad_tokens_and_logits_are_named(task):
    good = task.sample(3, torch.Generator().manual_seed(0)).tokens
    with pytest.raises(ValueError, match=r"shape \(B, 24\)"):
        blind(good[0], task)
    with pytest.raises(ValueError, match="24 positions"):
        examples_seen(good[:, :10], task)
    with pytest.raises(ValueError, match="alternate inputs"):
        blind(good.flip(1), task)
    with pytest.raises(ValueError, match="logits must have shape"):
        accuracy_by_k(torch.zeros(3, 24, 4), good, task, max_k=2)
    with pytest.raises(ValueError, match="split must be"):
        task.sample(3, torch.Generator(), "val")
    with pytest.raises(ValueError, match="max_k must be an integer >= 0"):
        accuracy_by_k(torch.zeros(3, 24, task.vocab_size), good, task, max_k=-1)


def test_the_counting_rule_answers_the_most_frequent_earlier_output():
    task = MappingTask(n_inputs=3, n_outputs=3, n_pairs=5, held_out=2)
    tokens = torch.tensor([[0, 4, 1, 5, 2, 5, 0, 4, 1, 5]])  # outputs 1 2 2 1 2 (ids 4, 5)
    answers = prompt_majority_logits(tokens, task)[0, 0::2, 3:6].argmax(-1)
    # nothing yet: output 0; then 1; then 1 and 2 tie at one each: 1; then 2 (two); then 1 and 2 tie at two: 1
    assert answers.tolist() == [0, 1, 1, 2, 1]

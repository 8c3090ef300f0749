import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmcourse import scoreboard
from lmcourse.data.batching import LMBatches
from lmcourse.data.synthetic import MarkovSource
from lmcourse.models.ngram import NGramModel
from lmcourse.scoreboard import CharData, _scored_windows, token_nll


def small_data(budget_name="test", n=6000, block_size=16) -> CharData:
    ids = torch.from_numpy(MarkovSource(vocab_size=6, order=2, seed=0).sample(n, seed=1)).long()
    chars = list("abcdef")
    text = "".join(chars[i] for i in ids)
    batches = LMBatches.from_tokens(ids, batch_size=4, block_size=block_size, device="cpu")
    return CharData(budget_name, text, chars, ids, batches)


class PreviousToken(torch.nn.Module):
    """Logits from the current token only: its scores cannot depend on how text is windowed."""

    def __init__(self, V):
        super().__init__()
        self.table = torch.nn.Embedding(V, V)

    def forward(self, idx, state=None):
        return self.table(idx), None


@pytest.mark.parametrize("n, block", [(10, 4), (11, 4), (100, 7), (65, 64), (3, 1), (500, 32)])
def test_every_target_is_scored_once_with_half_a_window_of_context(n, block):
    scored = []
    for i, (start, first) in enumerate(_scored_windows(n, block)):
        scored += range(first, start + block + 1)
        if i:  # after the first window: at least block // 2 tokens before each scored target
            assert first - start >= block // 2
    assert scored == list(range(1, n))


def test_token_nll_equals_the_full_sequence_cross_entropy(one_thread):
    torch.manual_seed(0)
    model = PreviousToken(6)
    ids = small_data().batches.splits.val
    with torch.no_grad():
        logits, _ = model(ids[:-1][None])
        expected = F.cross_entropy(logits[0], ids[1:], reduction="none").double()
    got = token_nll(model, ids, block_size=16, batch_windows=5)
    assert got.shape == (len(ids) - 1,)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert model.training  # put back as it was


def test_token_nll_refuses_a_text_too_short():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        token_nll(PreviousToken(3), torch.tensor([1]), 4)


def test_ngram_bits_is_its_cross_entropy_without_the_first_character():
    data = small_data()
    model = NGramModel(3, 6).fit(data.batches.splits.train.numpy())
    val = data.batches.splits.val.numpy()
    expected = -model.token_log_probs(val)[1:].mean() / math.log(2)
    assert scoreboard.ngram_bits(model, data) == pytest.approx(expected)


def test_char_data_round_trips_and_refuses_unknown_characters():
    data = small_data()
    assert data.decode(data.encode("abcfed")) == "abcfed"
    with pytest.raises(ValueError, match=r"characters \['z'\] are not in the vocabulary of 6"):
        data.encode("abz")
    assert data.key != small_data("other").key != small_data(n=5000).key


def test_table_ranks_baselines_and_recorded_models(home, one_thread):
    data = small_data()
    first = scoreboard.table(data)
    assert [r.name for r in first.rows] == ["Kneser-Ney", "unigram"]
    assert set(first.missing) == set(scoreboard.COURSE_MODELS)
    assert first["Kneser-Ney"] < first["unigram"] <= math.log2(6) + 0.01
    scoreboard.record("GPT", first["Kneser-Ney"] + 0.1, data, lesson="06", note="tiny")
    scoreboard.record("RNN", first["unigram"] + 1.0, data, lesson="03")
    scoreboard.record("RNN", first["Kneser-Ney"] - 0.05, data, lesson="03")  # a new run replaces the old
    t = scoreboard.table(data)
    assert [r.name for r in t.rows] == ["RNN", "Kneser-Ney", "GPT", "unigram"]
    assert t.best == "RNN" and "GPT" in t and "LSTM" not in t
    assert t.missing == ("LSTM", "GRU")
    assert "lesson 06: tiny" in str(t) and "LSTM (lesson 05)" in str(t)
    assert 2 <= t.kneser_ney_order <= 8
    with pytest.raises(KeyError, match="'LSTM' is not in the table"):
        t["LSTM"]
    # other data (another budget) keeps its own rows
    assert "GPT" not in scoreboard.table(small_data("other"))


def test_baselines_are_computed_once_per_data(home, monkeypatch):
    data = small_data()
    kn = scoreboard.table(data)["Kneser-Ney"]
    monkeypatch.setattr(NGramModel, "fit", lambda *a, **k: pytest.fail("refitted the n-grams"))
    assert scoreboard.table(data)["Kneser-Ney"] == kn


def test_record_refuses_bad_values_and_survives_a_corrupt_file(home):
    data = small_data()
    for bad in [float("nan"), -1.0, 0.0]:
        with pytest.raises(ValueError, match="bits must be a finite positive number"):
            scoreboard.record("GPT", bad, data)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        scoreboard.record(" ", 2.0, data)
    path = scoreboard.results_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    scoreboard.record("GPT", 2.0, data, lesson="06")
    assert json.loads(path.read_text())[data.key]["models"]["GPT"]["bits"] == 2.0


def test_bits_per_char_of_a_real_model(home, one_thread):
    from lmcourse.models.gpt import GPT, GPTConfig

    data = small_data()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=6, block_size=16, n_layer=1, n_head=1, n_embd=8))
    bits = scoreboard.bits_per_char(model, data)
    assert abs(bits - math.log2(6)) < 0.3  # an untrained model is close to uniform


def test_the_saved_crossover_figures_are_complete():
    c = scoreboard.crossover("cpu")
    assert c.budget_name == "cpu" and 2.0 < c.kneser_ney < 3.0 and c.kneser_ney_order >= 4
    assert set(c.curves) >= {"GPT"} and c.command.startswith("python benchmarks/bench_crossover.py")
    for name, points in c.curves.items():
        steps = [s for s, _ in points]
        assert steps == sorted(steps) and steps[0] == 0 and steps[-1] > c.lesson_steps
        assert all(0 < bits < 7 for _, bits in points)
        step, bits = c.best(name)
        assert c.first_below(name) is None or c.first_below(name) <= steps[-1]
    with pytest.raises(FileNotFoundError, match="bench_crossover.py --budget huge"):
        scoreboard.crossover("huge")

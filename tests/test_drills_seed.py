"""The seed articles' questions in the drill bank: each one answered once, and the Keras
programs in the A5 (RNN) and A6 (LSTM) answers run and generate, where the seed's did not."""
import re

import pytest

from lmcourse.drills import bank

SEED_FILE = bank.BANK_DIR / "seed.yaml"
SEED_TAGS = [f"seed-a{i}" for i in range(1, 8)] + [f"seed-b{i}" for i in range(1, 7)]
FENCED_PYTHON = re.compile(r"```python\n(.*?)```", re.S)


@pytest.fixture(scope="module")
def questions():
    return bank.load_questions([SEED_FILE])


def seed_question(questions, tag):
    found = [q for q in questions if "seed" in q.tags and tag in q.tags]
    assert len(found) == 1, f"{tag}: expected one seed question, found {[q.id for q in found]}"
    return found[0]


def test_every_seed_question_once_with_a_short_answer(questions):
    seeds = [q for q in questions if "seed" in q.tags]
    assert len(seeds) == len(SEED_TAGS) == 13
    for tag in SEED_TAGS:
        q = seed_question(questions, tag)
        assert q.kind == "short", q.id
        for lang in bank.LANGUAGES:
            assert q.short[lang].strip() and len(q.short[lang]) < len(q.answer[lang]), (q.id, lang)
    # each seed question carries exactly one seed-xx tag, and spot-the-error drills built from
    # the seed's mistakes are not counted as seed questions
    for q in seeds:
        assert len([t for t in q.tags if t.startswith("seed-")]) == 1, q.id
    for q in questions:
        if "spot-the-error" in q.tags or "spot-the-bug" in q.tags:
            assert "seed" not in q.tags, q.id
            assert any(t in SEED_TAGS for t in q.tags), f"{q.id}: which seed question it drills"


def test_spot_the_error_items_cover_the_seeds_mistakes(questions):
    drills = [q for q in questions if "spot-the-error" in q.tags]
    bugs = [q for q in questions if "spot-the-bug" in q.tags]
    assert len(drills) >= 14 and len(bugs) >= 2
    assert all("keras" in q.tags and "```python" in q.question["en"] for q in bugs)
    assert {q.correct for q in drills + bugs} == {0, 1, 2, 3}, "the right option's place varies"


def keras_program(questions, tag):
    q = seed_question(questions, tag)
    blocks = {lang: FENCED_PYTHON.findall(q.answer[lang]) for lang in bank.LANGUAGES}
    assert len(blocks["en"]) == 1, f"{q.id}: one fenced python program in the English answer"
    assert blocks["zh"] == blocks["en"], f"{q.id}: the Chinese answer shows the same program"
    return blocks["en"][0]


@pytest.mark.parametrize("tag, layer", [("seed-a5", "SimpleRNN"), ("seed-a6", "LSTM")])
def test_the_keras_answer_trains_and_generates(questions, tag, layer, tmp_path, monkeypatch):
    monkeypatch.setenv("LMCOURSE_HOME", str(tmp_path))
    source = keras_program(questions, tag)
    # the two bugs of the seed's program are not in the course's
    assert f"keras.layers.{layer}(hidden, return_sequences=True)" in source
    assert "Cell(" not in source
    assert re.search(r"^    ds, chars = make_dataset\(text\)$", source, re.M), "fit's data is built"
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    namespace = {"__name__": "seed_answer"}  # not "__main__": the driver reads input.txt
    exec(compile(source, f"<{tag} answer>", "exec"), namespace)

    text = "to be, or not to be, that is the question: whether 'tis nobler in the mind. " * 12
    ds, chars = namespace["make_dataset"](text, seq_len=16, batch_size=8)
    assert chars == sorted(set(text))
    x, y = next(iter(ds))
    assert tuple(x.shape) == tuple(y.shape) == (8, 16)
    assert (x.numpy()[:, 1:] == y.numpy()[:, :-1]).all(), "targets are the inputs shifted by one"

    model = namespace["build_model"](len(chars), embed_dim=8, hidden=16)
    assert any(type(layer_).__name__ == layer for layer_ in model.layers)
    history = model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)
    assert len(history.history["loss"]) == 1 and history.history["loss"][0] > 0

    out = namespace["generate"](model, chars, "to be", n_chars=20, temperature=0.8, seed=0)
    assert isinstance(out, str) and len(out) == 20
    assert set(out) <= set(chars)
    greedy = namespace["generate"](model, chars, "to be", n_chars=20, temperature=0, seed=0)
    assert greedy == namespace["generate"](model, chars, "to be", n_chars=20, temperature=0,
                                           seed=1), "temperature 0 is greedy: the seed is unused"

    with pytest.raises(ValueError, match="characters"):
        namespace["make_dataset"]("too short", seq_len=16, batch_size=8)

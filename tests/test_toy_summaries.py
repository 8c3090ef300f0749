import re

import pytest

from lmcourse.data.toy_summaries import TEAMS, Report, match_reports


def teams_in(text):
    return {team for team in TEAMS if team in text}


def test_reports_are_reproducible():
    assert match_reports(50, seed=1) == match_reports(50, seed=1)
    assert match_reports(50, seed=1) != match_reports(50, seed=2)


def test_the_key_sentence_states_the_result_the_summary_reports():
    for r in match_reports(300, seed=0):
        assert isinstance(r, Report) and 5 <= len(r.sentences) <= 7
        key = r.sentences[r.key]
        score = re.search(r"\d-\d", r.summary).group()
        assert score in key and len(teams_in(key)) == 2
        assert teams_in(key) == teams_in(r.summary)
        # the score appears in the key sentence only: no other sentence states the result
        assert [score in s for s in r.sentences].count(True) == 1
        assert r.document == " ".join(r.sentences)


def test_summaries_paraphrase_rather_than_copy():
    for r in match_reports(300, seed=0):
        words = set(r.summary.lower().replace(",", "").split())
        assert "win" in words and "scores" in words  # word forms the reports never use
        assert not re.search(r"\bwin\b|\bscores\b", r.document)
        assert all(r.summary not in s for s in r.sentences)


def test_half_of_the_reports_open_with_the_result():
    keys = [r.key for r in match_reports(1000, seed=0)]
    assert set(keys) == {0, 1}
    assert 0.4 < keys.count(0) / len(keys) < 0.6


@pytest.mark.parametrize("n, error", [(0, ValueError), (-3, ValueError), (1.5, TypeError),
                                      (False, TypeError)])
def test_bad_sizes_are_refused(n, error):
    with pytest.raises(error, match="n must be an integer >= 1"):
        match_reports(n)

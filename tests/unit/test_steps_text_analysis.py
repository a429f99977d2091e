"""Unit tests of steps/text_analysis.py: words, sentences, keywords, syllables and the quality components.

Plain functions, used by the analysis steps.
"""

from __future__ import annotations

from steps import text_analysis as ta
from tests.unit.step_helpers import GOOD_TEXT


def test_words_and_sentences() -> None:
    text = "It's late. Are you there?  Yes! trailing fragment"
    assert ta.words(text) == ["It's", "late", "Are", "you", "there", "Yes", "trailing", "fragment"]
    assert ta.sentences(text) == ["It's late.", "Are you there?", "Yes!", "trailing fragment"]


def test_keywords_rank_by_count_then_first_appearance() -> None:
    text = "Cache misses slow the cache. Slow disks make cache misses worse, disks too."
    assert ta.keywords(text, 3) == [
        {"term": "cache", "count": 3},
        {"term": "misses", "count": 2},
        {"term": "slow", "count": 2},
    ]


def test_syllable_estimate() -> None:
    assert [ta.syllables(word) for word in ("cat", "table", "make", "reading", "a")] == [1, 2, 1, 2, 1]


def test_quality_components_penalise_each_problem() -> None:
    good = ta.quality_components(GOOD_TEXT)
    assert ta.quality_score(good) == 1.0
    assert ta.quality_components(GOOD_TEXT.upper())["shouting"] == 0.0
    assert ta.quality_components("buy now buy now cheap cheap cheap best price buy now")["repetition"] < 0.5
    assert ta.quality_components("1234 5678 #### ab")["alphabetic"] == 0.0
    assert ta.quality_components("")["length"] == 0.0
    assert ta.quality_score(ta.quality_components("")) == 0.0

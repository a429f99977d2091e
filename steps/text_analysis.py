"""Text measurements shared by the text steps: words, sentences, keywords, readability, tone and a quality score.

Everything here is pure and deterministic (same text, same numbers), cheap enough to run per record, and
language-agnostic where it can be (word detection is Unicode-aware; the stop words and tone lexicon are English).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+")
_TERMINAL = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")
_PUNCT_RUN = re.compile(r"[!?]{2,}")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves also get got us let
    i'm it's don't can't won't i've we're they're""".split()
)

POSITIVE_WORDS = frozenset(
    """good great excellent amazing love loved lovely helpful fast quick easy clear happy pleased perfect
    recommend recommended reliable friendly smooth satisfied fantastic wonderful superb efficient accurate
    impressive delighted solid useful comfortable well thanks thank best better resolved works""".split()
)
NEGATIVE_WORDS = frozenset(
    """bad poor terrible awful hate hated slow broken late refund problem problems issue issues disappointed
    disappointing worst worse useless rude confusing difficult failed fails error errors missing damaged never
    scam cheap angry annoying unacceptable delayed wrong complaint crash crashes buggy""".split()
)

#: Weights of the quality components; they sum to 1.
QUALITY_WEIGHTS: dict[str, float] = {
    "length": 0.25,
    "alphabetic": 0.15,
    "word_length": 0.10,
    "sentence_structure": 0.20,
    "repetition": 0.20,
    "shouting": 0.10,
}


def clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return max(low, min(high, value))


def words(text: str) -> list[str]:
    """The words of ``text`` (runs of letters, with inner apostrophes), in order, case kept."""
    return WORD_RE.findall(text)


def sentences(text: str) -> list[str]:
    """``text`` split after terminal punctuation; a trailing fragment without punctuation is a sentence too."""
    parts = [part.strip() for part in _SENTENCE_END.split(text.strip())]
    return [part for part in parts if part]


def content_words(tokens: list[str]) -> list[str]:
    """Lower-cased words that are not stop words and longer than two letters."""
    lowered = (token.lower().replace("\u2019", "'") for token in tokens)
    return [word for word in lowered if word not in STOP_WORDS and len(word) > 2]


def syllables(word: str) -> int:
    """An estimate of the syllables of an English word (vowel groups, silent final e), at least 1."""
    folded = unicodedata.normalize("NFKD", word.lower()).encode("ascii", "ignore").decode()
    count = len(_VOWEL_GROUPS.findall(folded))
    if folded.endswith("e") and not folded.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1
    return max(1, count)


def keywords(text: str, limit: int = 5) -> list[dict[str, Any]]:
    """The ``limit`` most frequent content words, ties broken by first appearance."""
    terms = content_words(words(text))
    counts = Counter(terms)
    first_seen: dict[str, int] = {}
    for index, term in enumerate(terms):
        first_seen.setdefault(term, index)
    ranked = sorted(counts, key=lambda term: (-counts[term], first_seen[term]))
    return [{"term": term, "count": counts[term]} for term in ranked[:limit]]


def readability(text: str) -> dict[str, Any]:
    """Flesch reading ease and Flesch-Kincaid grade of ``text`` (English formulas), with a plain-words band."""
    tokens = words(text)
    if not tokens:
        return {"flesch_reading_ease": 0.0, "flesch_kincaid_grade": 0.0, "band": "unreadable"}
    sentence_count = max(1, len(sentences(text)))
    syllable_count = sum(syllables(token) for token in tokens)
    words_per_sentence = len(tokens) / sentence_count
    syllables_per_word = syllable_count / len(tokens)
    ease = 206.835 - 1.015 * words_per_sentence - 84.6 * syllables_per_word
    grade = 0.39 * words_per_sentence + 11.8 * syllables_per_word - 15.59
    if ease >= 80:
        band = "easy"
    elif ease >= 60:
        band = "standard"
    elif ease >= 30:
        band = "difficult"
    else:
        band = "very_difficult"
    return {"flesch_reading_ease": round(ease, 2), "flesch_kincaid_grade": round(grade, 2), "band": band}


def tone(text: str) -> dict[str, Any]:
    """Lexicon-based tone: counts of positive and negative words, a score in [-1, 1] and a label."""
    lowered = [token.lower() for token in words(text)]
    positive = sum(1 for token in lowered if token in POSITIVE_WORDS)
    negative = sum(1 for token in lowered if token in NEGATIVE_WORDS)
    total = positive + negative
    score = 0.0 if total == 0 else (positive - negative) / total
    label = "neutral" if abs(score) < 0.2 or total == 0 else ("positive" if score > 0 else "negative")
    return {"score": round(score, 4), "label": label, "positive_terms": positive, "negative_terms": negative}


def summary(text: str, max_sentences: int = 2) -> str:
    """An extractive summary: the sentences whose content words are most frequent in the text, kept in order."""
    parts = sentences(text)
    if len(parts) <= max_sentences:
        return " ".join(parts)
    counts = Counter(content_words(words(text)))
    scored = []
    for index, sentence in enumerate(parts):
        terms = content_words(words(sentence))
        score = sum(counts[term] for term in terms) / (len(terms) ** 0.5) if terms else 0.0
        scored.append((score, index))
    chosen = sorted(index for _, index in sorted(scored, key=lambda item: (-item[0], item[1]))[:max_sentences])
    return " ".join(parts[index] for index in chosen)


def preview(text: str, limit: int = 120) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "\u2026"


@dataclass(frozen=True)
class TextStatistics:
    """Counts describing a text."""

    characters: int
    words: int
    sentences: int
    content_words: int
    distinct_content_words: int
    average_word_length: float
    average_sentence_length: float

    @classmethod
    def of(cls, text: str) -> TextStatistics:
        tokens = words(text)
        terms = content_words(tokens)
        sentence_count = len(sentences(text))
        return cls(
            characters=len(text),
            words=len(tokens),
            sentences=sentence_count,
            content_words=len(terms),
            distinct_content_words=len(set(terms)),
            average_word_length=round(sum(map(len, tokens)) / len(tokens), 4) if tokens else 0.0,
            average_sentence_length=round(len(tokens) / sentence_count, 4) if sentence_count else 0.0,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "characters": self.characters,
            "words": self.words,
            "sentences": self.sentences,
            "content_words": self.content_words,
            "distinct_content_words": self.distinct_content_words,
            "average_word_length": self.average_word_length,
            "average_sentence_length": self.average_sentence_length,
        }


def quality_components(text: str) -> dict[str, float]:
    """Each quality component of ``text`` as a score in [0, 1] (1 is best); see :data:`QUALITY_WEIGHTS`.

    - length: ramps from 3 words (0) to 30 words (1), and falls again past 5,000 words;
    - alphabetic: share of letters among non-space characters (symbol and digit soup scores low);
    - word_length: average word length within 3.5-7.5 letters;
    - sentence_structure: sentences that start with a capital and end with punctuation, of 5-35 words;
    - repetition: distinct share of the content words (spam repeats itself);
    - shouting: share of capital letters, and runs of ``!!`` / ``??``.
    """
    tokens = words(text)
    count = len(tokens)
    if count == 0:
        return dict.fromkeys(QUALITY_WEIGHTS, 0.0)

    length = clamp((count - 3) / 27)
    if count > 5000:
        length = clamp(1 - (count - 5000) / 20000, 0.5)

    non_space = [char for char in text if not char.isspace()]
    letters = [char for char in non_space if char.isalpha()]
    alphabetic = clamp((len(letters) / len(non_space) - 0.55) / 0.25)

    average_length = sum(map(len, tokens)) / count
    if average_length < 3.5:
        word_length = clamp((average_length - 1.5) / 2)
    elif average_length > 7.5:
        word_length = clamp(1 - (average_length - 7.5) / 5)
    else:
        word_length = 1.0

    parts = sentences(text)
    well_formed = sum(1 for part in parts if _starts_capitalised(part) and _TERMINAL.search(part)) / len(parts)
    words_per_sentence = count / len(parts)
    if words_per_sentence < 5:
        sentence_length = words_per_sentence / 5
    elif words_per_sentence > 35:
        sentence_length = clamp(1 - (words_per_sentence - 35) / 35)
    else:
        sentence_length = 1.0
    sentence_structure = 0.6 * well_formed + 0.4 * sentence_length

    terms = content_words(tokens)
    repetition = clamp((len(set(terms)) / len(terms) - 0.4) / 0.35) if terms else 0.0

    upper_share = sum(1 for char in letters if char.isupper()) / len(letters) if letters else 0.0
    shouting = clamp(1 - clamp((upper_share - 0.15) / 0.35) - 0.15 * len(_PUNCT_RUN.findall(text)))

    return {
        "length": round(length, 4),
        "alphabetic": round(alphabetic, 4),
        "word_length": round(word_length, 4),
        "sentence_structure": round(sentence_structure, 4),
        "repetition": round(repetition, 4),
        "shouting": round(shouting, 4),
    }


def quality_score(components: dict[str, float]) -> float:
    """The weighted mean of the components, rounded to 4 decimals, in [0, 1]."""
    return round(clamp(sum(QUALITY_WEIGHTS[name] * components[name] for name in QUALITY_WEIGHTS)), 4)


_ISSUES = {
    "length": "text is too short to analyse well",
    "alphabetic": "text is mostly digits, symbols or markup",
    "word_length": "unusual word lengths (fragments or run-together tokens)",
    "sentence_structure": "sentences lack capitals, punctuation or a normal length",
    "repetition": "words are heavily repeated",
    "shouting": "excessive capitals or repeated !!/??",
}


def quality_issues(components: dict[str, float], floor: float = 0.6) -> list[str]:
    """Plain-words descriptions of the components scoring below ``floor``, worst first."""
    weak = sorted((score, name) for name, score in components.items() if score < floor)
    return [f"{name}: {_ISSUES[name]} ({score:.2f})" for score, name in weak]


def _starts_capitalised(sentence: str) -> bool:
    for char in sentence:
        if char.isalpha():
            return char.isupper()
        if char.isdigit():
            return True
    return False

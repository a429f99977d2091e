"""Text analysis steps of the guide's "Custom Data Processing Pipeline": a quality gate and two processors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ia_modules.pipeline.core import Step

from . import text_analysis as ta
from ._common import config_float, config_int, text_of


def _input_text(step: Step, data: Mapping[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    """The text under input ``key`` (a string or a dict with ``text``) and the record it came in."""
    value = data.get(key)
    if value is None:
        raise ValueError(f"step '{step.name}': input '{key}' is missing")
    text = text_of(value)
    if text is None:
        raise ValueError(
            f"step '{step.name}': input '{key}' must be text or a dict with a 'text' string, got {type(value).__name__}"
        )
    record = dict(value) if isinstance(value, Mapping) else {"text": text}
    return text, record


class QualityCheckerStep(Step):
    """Score how usable a text is, in [0, 1], so the pipeline can route good texts to deeper processing.

    The score is a weighted mean of length, share of letters, average word length, sentence structure,
    repetition and shouting (see :func:`steps.text_analysis.quality_components`). Takes ``cleaned_data``;
    returns ``quality_score``, ``quality_details`` (each component), ``issues``, ``passes_threshold`` against
    config ``threshold`` (default 0.8) and ``validated_data`` (the record with its score) for the processors.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.threshold = config_float(name, "threshold", self.config.get("threshold", 0.8))

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        text, record = _input_text(self, data, "cleaned_data")
        components = ta.quality_components(text)
        score = ta.quality_score(components)
        return {
            "quality_score": score,
            "quality_details": components,
            "issues": ta.quality_issues(components),
            "threshold": self.threshold,
            "passes_threshold": score > self.threshold,
            "validated_data": {**record, "quality_score": score},
            "status": "success",
        }


class AdvancedProcessorStep(Step):
    """Deep analysis for texts that passed the quality gate: statistics, keywords, an extractive summary,
    readability and tone. Takes ``data`` (a string or a dict with ``text``); returns ``result`` and
    ``processing_type`` ``"advanced"``. Config: ``keyword_count`` (default 5), ``summary_sentences`` (2)."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.keyword_count = config_int(name, "keyword_count", self.config.get("keyword_count", 5), minimum=1)
        self.summary_sentences = config_int(
            name, "summary_sentences", self.config.get("summary_sentences", 2), minimum=1
        )

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        text, record = _input_text(self, data, "data")
        stats = ta.TextStatistics.of(text)
        result = {
            "summary": ta.summary(text, self.summary_sentences),
            "keywords": ta.keywords(text, self.keyword_count),
            "statistics": {
                **stats.as_dict(),
                "lexical_diversity": round(stats.distinct_content_words / stats.content_words, 4)
                if stats.content_words
                else 0.0,
            },
            "readability": ta.readability(text),
            "tone": ta.tone(text),
            "quality_score": record.get("quality_score"),
        }
        return {"result": result, "processing_type": "advanced", "status": "success"}


class StandardProcessorStep(Step):
    """Light processing for texts below the quality gate: counts, a preview and the top keywords, without
    the summary or readability that would be noise on short or messy text. Takes ``data``; returns ``result``
    and ``processing_type`` ``"standard"``. Config: ``keyword_count`` (default 3), ``preview_chars`` (120)."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.keyword_count = config_int(name, "keyword_count", self.config.get("keyword_count", 3), minimum=1)
        self.preview_chars = config_int(name, "preview_chars", self.config.get("preview_chars", 120), minimum=10)

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        text, record = _input_text(self, data, "data")
        stats = ta.TextStatistics.of(text)
        result = {
            "preview": ta.preview(text, self.preview_chars),
            "keywords": ta.keywords(text, self.keyword_count),
            "statistics": {"characters": stats.characters, "words": stats.words, "sentences": stats.sentences},
            "tone": ta.tone(text)["label"],
            "quality_score": record.get("quality_score"),
        }
        return {"result": result, "processing_type": "standard", "status": "success"}

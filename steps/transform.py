"""The guide's basic steps: DataTransformStep (string transforms) and ConditionalProcessingStep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ia_modules.pipeline.core import Step

from . import text_analysis as ta
from ._common import config_float, is_number

TRANSFORMS: dict[str, Callable[[str], str]] = {
    "uppercase": str.upper,
    "lowercase": str.lower,
    "reverse": lambda text: text[::-1],
    "title": str.title,
    "strip": str.strip,
    "none": lambda text: text,
}


class DataTransformStep(Step):
    """Apply a string transform to one field, as the guide's first example.

    Config ``field_name`` (default ``text``) names the input field, ``transform_type`` (default ``uppercase``)
    one of uppercase, lowercase, reverse, title, strip, none. An unknown transform is rejected when the step is
    built; a missing or non-text field when it runs.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.transform_type = str(self.config.get("transform_type", "uppercase"))
        if self.transform_type not in TRANSFORMS:
            raise ValueError(
                f"step '{name}': unknown transform_type {self.transform_type!r}; "
                f"expected one of {', '.join(TRANSFORMS)}"
            )
        self.field_name = str(self.config.get("field_name", "text"))

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.field_name not in data or data[self.field_name] is None:
            raise ValueError(f"step '{self.name}': input field '{self.field_name}' is missing")
        input_text = data[self.field_name]
        if not isinstance(input_text, str):
            raise ValueError(
                f"step '{self.name}': input field '{self.field_name}' must be text, got {type(input_text).__name__}"
            )
        return {
            "transformed_text": TRANSFORMS[self.transform_type](input_text),
            "original_text": input_text,
            "transform_type": self.transform_type,
            "status": "success",
        }


class ConditionalProcessingStep(Step):
    """Choose between two processing paths inside one step, on ``quality_score`` against config ``threshold``.

    Above the threshold the text (config ``field_name``, default ``text``) gets the advanced treatment
    (keywords, summary, readability); otherwise standard counts. ``confidence`` says how clear the choice was:
    0.5 at the threshold, rising to 1 as the score moves away from it.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.threshold = config_float(name, "threshold", self.config.get("threshold", 0.5))
        self.field_name = str(self.config.get("field_name", "text"))

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        score = data.get("quality_score", 0.0)
        if not is_number(score):
            raise ValueError(f"step '{self.name}': quality_score must be a number, got {score!r}")
        text = data.get(self.field_name, "")
        if not isinstance(text, str):
            raise ValueError(f"step '{self.name}': field '{self.field_name}' must be text, got {type(text).__name__}")
        confidence = round(min(1.0, 0.5 + abs(float(score) - self.threshold)), 4)
        if score > self.threshold:
            result = self._process_high_quality(text, confidence)
            processing_type = "high_quality"
        else:
            result = self._process_standard(text, confidence)
            processing_type = "standard"
        return {
            "processed_result": result,
            "processing_type": processing_type,
            "quality_score": score,
            "threshold_used": self.threshold,
            "status": "success",
        }

    @staticmethod
    def _process_high_quality(text: str, confidence: float) -> dict[str, Any]:
        return {
            "algorithm": "advanced",
            "confidence": confidence,
            "details": "keywords, extractive summary and readability",
            "keywords": [item["term"] for item in ta.keywords(text, 5)],
            "summary": ta.summary(text, 2),
            "readability": ta.readability(text),
        }

    @staticmethod
    def _process_standard(text: str, confidence: float) -> dict[str, Any]:
        stats = ta.TextStatistics.of(text)
        return {
            "algorithm": "standard",
            "confidence": confidence,
            "details": "word and sentence counts",
            "words": stats.words,
            "sentences": stats.sentences,
        }

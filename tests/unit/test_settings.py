"""Settings as users write them: ``IA_*`` variables, validated, and every problem named by its variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.settings import Settings, settings_problems


@pytest.mark.parametrize("written", ["debug", "Debug", " DEBUG "])
def test_a_log_level_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch, written: str) -> None:
    monkeypatch.setenv("IA_LOG_LEVEL", written)
    assert Settings().log_level == "DEBUG"


def test_an_unknown_log_level_is_named_as_it_was_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IA_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert settings_problems(raised.value) == [
        "IA_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' (got 'verbose')"
    ]


def test_a_database_url_is_never_repeated_in_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IA_DATABASE_URL", "postgresql://ia:s3cret@db/ia")
    monkeypatch.setenv("IA_WEB_PORT", "0")
    with pytest.raises(ValidationError) as raised:
        Settings(database_url=123)  # type: ignore[arg-type]  # not a string: a problem whose input is the URL
    problems = settings_problems(raised.value)
    assert "IA_WEB_PORT: Input should be greater than or equal to 1 (got '0')" in problems
    assert any(line.startswith("IA_DATABASE_URL: ") for line in problems)
    assert not any("123" in line or "s3cret" in line for line in problems)

"""Reading JSON-lines event files: line numbers for every problem, blank lines skipped, a byte-order mark ignored."""

from __future__ import annotations

from pathlib import Path

from streams.cli.events_file import EventLine, read_events


async def lines_of(path: Path, batch: int = 1000) -> list[EventLine]:
    return [line async for line in read_events(path, batch)]


async def test_events_keep_their_line_numbers_and_bad_lines_say_why(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n\n[1, 2]\n{"b": \n{"c": 3}\n')
    lines = await lines_of(path, batch=2)  # across batch boundaries
    assert [(line.line, line.event) for line in lines] == [(1, {"a": 1}), (3, None), (4, None), (5, {"c": 3})]
    assert lines[1].problem == "an event must be a JSON object, not list"
    assert lines[2].problem is not None and lines[2].problem.startswith("invalid JSON: ")


async def test_a_byte_order_mark_in_front_of_the_first_line_is_not_part_of_the_event(tmp_path: Path) -> None:
    path = tmp_path / "saved-by-an-editor.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n')
    assert [line.event for line in await lines_of(path)] == [{"a": 1}, {"b": 2}]


async def test_an_empty_file_has_no_events(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert await lines_of(path) == []


async def test_with_a_depth_limit_a_line_nested_deeper_is_not_an_event_and_says_how_deep(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    at_limit, over = b'{"a": [[1]]}', b'{"a": [[[1]]]}'
    path.write_bytes(b"\n".join([at_limit, over, b'{"b": 2}']) + b"\n")
    lines = [line async for line in read_events(path, max_depth=3)]
    assert [(line.line, line.event) for line in lines] == [(1, {"a": [[1]]}), (2, None), (3, {"b": 2})]
    assert lines[1].problem == "the event nests 4 levels deep, over the 3 an event may have (IA_MAX_JSON_DEPTH)"
    assert [line.event for line in await lines_of(path)] == [{"a": [[1]]}, {"a": [[[1]]]}, {"b": 2}], "no limit"

"""streams/joins/store.py: join state per partition, what it writes to the changelog, and restoring it.

A join fires once, when every path of it has delivered; until then each delivery writes the partial state
(``Produced.join_state``, sent with the batch), and firing writes a marker (``Produced.join_markers``, sent only
once what the join fired is acknowledged). The store does no I/O: the changelog records are read off ``Produced``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ia_modules.pipeline.graph import END
from ia_modules.pipeline.kernel import Token
from ia_modules.pipeline.wire import RunError, run_error
from streams.joins.store import JoinEntry, JoinStateTooLarge, JoinStore, join_key
from streams.sink.checkpoint import Produced

TOPIC = "ia.p.joins"
KEY = join_key("run-1", 0, "merge")
RUN = {"key": "cust-7", "input": {"text": "hi"}, "source": None, "started_ms": 5}


def store(max_bytes: int = 1_000_000) -> JoinStore:
    return JoinStore(TOPIC, {"merge": 2, END: 3}, max_bytes)


def trace(step: str, status: str = "ok") -> dict[str, Any]:
    return {"step": step, "status": status}


def deliver(
    joins: JoinStore,
    tokens: dict[int, Token],
    outputs: dict[str, Any] | None = None,
    steps: tuple[str, ...] = (),
    error: RunError | None = None,
    *,
    key: str = KEY,
    node: str = "merge",
    partition: int = 2,
    now_ms: int = 1_000,
) -> tuple[JoinEntry | None, Produced]:
    out = Produced()
    fired = joins.deliver(
        partition, key, node, tokens, (outputs or {}, [trace(s) for s in steps], error), now_ms, RUN, out
    )
    return fired, out


def test_join_key_is_run_replay_and_node() -> None:
    assert join_key("run-1", 0, "merge") == "run-1|0|merge"
    assert join_key("run-1", 2, END) == f"run-1|2|{END}"


def test_a_partial_join_keeps_its_state_and_writes_it_with_the_batch() -> None:
    joins = store()
    fired, out = deliver(joins, {0: "run"}, {"left": {"n": 1}}, ("left",))
    assert fired is None
    assert out.join_markers == [] and out.sends == []
    [written] = out.join_state
    assert (written.topic, written.partition, written.key) == (TOPIC, 2, KEY.encode())
    assert written.value is not None
    state = orjson.loads(written.value)
    assert state == {
        "tokens": {"0": "run"},
        "outputs": {"left": {"n": 1}},
        "trace": [trace("left")],
        "error": None,
        "created_ms": 1_000,
        "run": RUN,
        "fired": False,
    }
    assert joins.waiting() == 1 and not joins.empty
    assert [(p, k) for p, k, _ in joins.waiting_since(1_000)] == [(2, KEY)]
    assert list(joins.waiting_since(999)) == [], "created after 999"


def test_the_join_fires_once_every_path_delivered_with_what_all_brought() -> None:
    joins = store()
    deliver(joins, {0: "run"}, {"left": {"n": 1}}, ("left",), now_ms=1_000)
    fired, out = deliver(joins, {1: "skip"}, {"right": {"m": 2}}, ("right",), now_ms=2_000)
    assert fired is not None
    assert fired.tokens == {0: "run", 1: "skip"}
    assert fired.outputs == {"left": {"n": 1}, "right": {"m": 2}}
    assert list(fired.trace) == ["left", "right"]
    assert fired.decision() == "run"
    assert fired.run == RUN and fired.created_ms == 1_000
    assert out.join_state == [], "firing writes no partial state"
    [marker] = out.join_markers
    assert marker.key == KEY.encode() and marker.partition == 2
    assert marker.value is not None
    assert orjson.loads(marker.value) == {"fired": True, "created_ms": 1_000}, "only a small marker is kept"
    kept = joins.get(2, KEY)
    assert kept is not None and kept.fired and kept.tokens == {} and kept.outputs == {}
    assert joins.waiting() == 0 and not joins.empty


def test_a_token_arriving_again_after_the_join_fired_is_ignored() -> None:
    joins = store()
    deliver(joins, {0: "run"})
    deliver(joins, {1: "run"})
    again, out = deliver(joins, {1: "run"}, {"right": {"m": 3}})
    assert again is None
    assert not out, "nothing written for a duplicate"


def test_a_join_that_fires_fail_keeps_its_whole_state_for_a_replay() -> None:
    joins = store()
    boom = run_error("ValueError", "boom", step="left", attempts=3)
    deliver(joins, {0: "fail"}, {}, ("left",), boom)
    fired, out = deliver(joins, {1: "run"}, {"right": {"m": 2}}, ("right",), run_error("Other", "later"))
    assert fired is not None and fired.decision() == "fail"
    assert fired.error == boom, "the first error is the run's"
    [marker] = out.join_markers
    assert marker.value is not None
    restored = JoinEntry.decode(marker.value)
    assert restored.fired and restored.tokens == {0: "fail", 1: "run"}
    assert restored.outputs == {"right": {"m": 2}} and restored.error == boom and restored.run == RUN
    kept = joins.get(2, KEY)
    assert kept is not None and kept.tokens == {0: "fail", 1: "run"}


def test_a_failed_join_whose_state_is_too_large_for_a_record_keeps_only_its_marker() -> None:
    """The state a failed join keeps for a replay goes into its marker: over ``max_bytes`` the broker would refuse
    the marker on every retry, so only the small marker is kept and written (a replay starts that join afresh)."""
    joins = store(max_bytes=300)
    deliver(joins, {0: "fail"}, {}, ("left",), run_error("ValueError", "boom", step="left"))
    fired, out = deliver(joins, {1: "run"}, {"right": {"blob": "x" * 400}}, ("right",))
    assert fired is not None and fired.decision() == "fail", "the run still goes on from the join's decision"
    [marker] = out.join_markers
    assert marker.value is not None and len(marker.value) <= 300
    assert orjson.loads(marker.value) == {"fired": True, "created_ms": 1_000}
    kept = joins.get(2, KEY)
    assert kept is not None and kept.fired and kept.tokens == {}


def test_the_first_trace_entry_of_a_step_is_kept() -> None:
    entry = JoinEntry({}, {}, {}, None, 0)
    entry.merge({"a": {"v": 1}}, [trace("a", "ok")], None)
    entry.merge({"a": {"v": 2}}, [trace("a", "skipped"), trace("b")], None)
    assert entry.trace == {"a": trace("a", "ok"), "b": trace("b")}
    assert entry.outputs == {"a": {"v": 2}}


@pytest.mark.parametrize(
    ("tokens", "decision"),
    [({0: "run", 1: "skip"}, "run"), ({0: "skip", 1: "skip"}, "skip"), ({0: "run", 1: "fail"}, "fail")],
)
def test_the_decision_once_all_paths_delivered(tokens: dict[int, Token], decision: Token) -> None:
    joins = store()
    first, second = tokens.items()
    deliver(joins, dict([first]))
    fired, _ = deliver(joins, dict([second]))
    assert fired is not None and fired.decision() == decision


def test_joins_of_different_partitions_runs_and_nodes_are_apart() -> None:
    joins = store()
    other_run = join_key("run-2", 0, "merge")
    replayed = join_key("run-1", 1, "merge")
    deliver(joins, {0: "run"})
    deliver(joins, {1: "run"}, key=other_run)
    deliver(joins, {1: "run"}, key=replayed)
    deliver(joins, {1: "run"}, partition=3)
    assert joins.waiting() == 4
    fired, _ = deliver(joins, {1: "run"})
    assert fired is not None and joins.waiting() == 3


# -- closing, and state too large --------------------------------------------------------------------------------------


def test_close_marks_a_waiting_join_fired_without_firing_it() -> None:
    joins = store()
    deliver(joins, {0: "run"}, now_ms=1_000)
    out = Produced()
    joins.close(2, KEY, 9_000, out)
    [marker] = out.join_markers
    assert marker.value is not None
    assert orjson.loads(marker.value) == {"fired": True, "created_ms": 1_000}
    late, late_out = deliver(joins, {1: "run"})
    assert late is None and not late_out, "the run gets no second result"
    assert joins.waiting() == 0


def test_close_of_a_join_never_seen_remembers_it_from_now() -> None:
    joins = store()
    out = Produced()
    joins.close(2, KEY, 9_000, out)
    [marker] = out.join_markers
    assert marker.value is not None
    assert orjson.loads(marker.value) == {"fired": True, "created_ms": 9_000}
    fired, _ = deliver(joins, {0: "run"})
    assert fired is None


def test_close_of_a_join_that_fired_writes_nothing() -> None:
    joins = store()
    deliver(joins, {0: "run"})
    deliver(joins, {1: "run"})
    out = Produced()
    joins.close(2, KEY, 9_000, out)
    assert not out


def test_state_too_large_to_write_closes_the_join_and_raises() -> None:
    joins = store(max_bytes=300)
    with pytest.raises(JoinStateTooLarge) as raised:
        deliver(joins, {0: "run"}, {"left": {"blob": "x" * 400}}, ("left",), node="merge", now_ms=1_000)
    error = raised.value
    assert (error.topic, error.node) == (TOPIC, "merge")
    assert error.size > 400
    assert str(error) == f"join state of {error.size:,} bytes for {TOPIC}"
    entry = joins.get(2, KEY)
    assert entry is not None and entry.fired and entry.tokens == {}, "closed, the bulk not kept"
    late, late_out = deliver(joins, {1: "run"})
    assert late is None and not late_out


def test_state_too_large_writes_the_closing_marker_not_the_state() -> None:
    joins = store(max_bytes=300)
    out = Produced()
    with pytest.raises(JoinStateTooLarge):
        joins.deliver(2, KEY, "merge", {0: "run"}, ({"left": {"blob": "x" * 400}}, [], None), 1_000, RUN, out)
    assert out.join_state == []
    [marker] = out.join_markers
    assert marker.value is not None and len(marker.value) < 300


# -- restoring from the changelog, purging -----------------------------------------------------------------------------


def test_apply_restores_what_the_changelog_records_say_and_none_deletes() -> None:
    source = store()
    _, partial = deliver(source, {0: "run"}, {"left": {"n": 1}}, ("left",))
    other = join_key("run-2", 0, "merge")
    deliver(source, {0: "run"}, key=other)
    _, fired = deliver(source, {1: "run"}, key=other)
    records = [(e.key, e.value) for e in [*partial.join_state, *fired.join_markers]]

    restored = store()
    for key, value in records:
        assert key is not None
        restored.apply(2, key, value)
    waiting = restored.get(2, KEY)
    assert waiting is not None and not waiting.fired
    assert waiting.tokens == {0: "run"} and waiting.outputs == {"left": {"n": 1}} and waiting.run == RUN
    done = restored.get(2, other)
    assert done is not None and done.fired
    assert restored.waiting() == 1

    completed, _ = deliver(restored, {1: "skip"})
    assert completed is not None and completed.tokens == {0: "run", 1: "skip"}, "resumes where the other stopped"
    again, _ = deliver(restored, {1: "run"}, key=other)
    assert again is None, "a join fired before the takeover stays fired"

    restored.apply(2, other.encode(), None)
    assert restored.get(2, other) is None
    restored.apply(2, b"never-seen", None)


def test_drop_forgets_a_partition() -> None:
    joins = store()
    deliver(joins, {0: "run"}, partition=2)
    deliver(joins, {0: "run"}, partition=3)
    joins.drop(2)
    assert joins.get(2, KEY) is None and joins.get(3, KEY) is not None
    joins.drop(3)
    assert joins.empty


def test_purge_fired_writes_tombstones_for_old_markers_and_keeps_failed_joins_longer() -> None:
    joins = store()
    ok_key, failed_key, recent_key = (join_key(r, 0, "merge") for r in ("ok", "failed", "recent"))
    joins_made: list[tuple[str, Token, int]] = [
        (ok_key, "run", 1_000),
        (failed_key, "fail", 1_000),
        (recent_key, "run", 5_000),
    ]
    for key, second, created in joins_made:
        deliver(joins, {0: "run"}, key=key, now_ms=created)
        deliver(joins, {1: second}, key=key, now_ms=created)
    deliver(joins, {0: "run"}, key=join_key("waiting", 0, "merge"), now_ms=1_000)

    out = Produced()
    joins.purge_fired(older_than_ms=2_000, failed_older_than_ms=500, out=out)
    assert [(e.key, e.value) for e in out.join_state] == [(ok_key.encode(), None)]
    assert joins.get(2, ok_key) is None
    assert joins.get(2, failed_key) is not None and joins.get(2, recent_key) is not None
    assert joins.waiting() == 1, "a join still waiting is never purged"

    later = Produced()
    joins.purge_fired(older_than_ms=2_000, failed_older_than_ms=1_500, out=later)
    assert [(e.key, e.value) for e in later.join_state] == [(failed_key.encode(), None)]


def test_empty_when_nothing_is_waiting_or_remembered() -> None:
    joins = store()
    assert joins.empty and joins.waiting() == 0
    deliver(joins, {0: "run"})
    deliver(joins, {1: "run"})
    assert not joins.empty, "a fired marker is remembered"
    joins.purge_fired(10_000, 10_000, Produced())
    assert joins.empty


# -- JoinEntry encoding ------------------------------------------------------------------------------------------------


def test_a_waiting_entry_survives_encoding() -> None:
    entry = JoinEntry(
        tokens={0: "run", 3: "skip"},
        outputs={"a": {"v": [1, 2]}},
        trace={"a": trace("a"), "b": trace("b", "skipped")},
        error=run_error("KeyError", "x", step="b", attempts=1),
        created_ms=42,
        run=RUN,
    )
    assert JoinEntry.decode(entry.encode()) == entry


def test_a_fired_entry_encodes_as_a_marker_unless_it_failed() -> None:
    fired = JoinEntry({0: "run", 1: "skip"}, {"a": {}}, {}, None, 42, fired=True)
    assert orjson.loads(fired.encode()) == {"fired": True, "created_ms": 42}
    assert JoinEntry.decode(fired.encode()) == JoinEntry({}, {}, {}, None, 42, fired=True)
    failed = JoinEntry({0: "fail", 1: "run"}, {"a": {}}, {"a": trace("a")}, None, 42, fired=True, run=RUN)
    assert JoinEntry.decode(failed.encode()) == failed


def test_a_failed_join_whose_state_cannot_be_encoded_keeps_only_its_marker() -> None:
    """State nested past what orjson writes: the marker still goes out (else a restore would let the join time out
    into a second result), and the join is remembered as fired."""
    joins = store()
    deep: Any = 1
    for _ in range(300):
        deep = {"d": deep}
    deliver(joins, {0: "fail"}, {}, ("left",), run_error("ValueError", "boom", step="left"))
    fired, out = deliver(joins, {1: "run"}, {"right": {"deep": deep}}, ("right",))
    assert fired is not None and fired.decision() == "fail"
    [marker] = out.join_markers
    assert marker.value is not None and orjson.loads(marker.value) == {"fired": True, "created_ms": 1_000}
    kept = joins.get(2, KEY)
    assert kept is not None and kept.fired

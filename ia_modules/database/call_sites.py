"""Whether a DatabaseManager call is awaited: decided per call site, from the caller's code, and cached.

The guide's steps call ``db.execute(...)`` without ``await``; the rest of the world awaits it. A method of the
manager looks at the frame that called it: the instruction after that frame's CALL (``sys._getframe(1)``,
``f_lasti``). ``GET_AWAITABLE`` means ``await db.execute(...)``: the method returns its coroutine. ``POP_TOP``
means the value is dropped (``db.execute(...)`` as a statement): the call runs to completion. Anything else is
decided on the caller's source (its AST, found by the CALL's position): the value counts as awaited when it flows
into an ``await`` or to what awaits it (``asyncio.gather/wait_for/create_task/...``, an awaited call such as
``await maybe_await(db.execute(...))``, a variable later awaited, a list later gathered), and as returned to the
caller's caller when a plain function or lambda returns it (that caller decides, at call time). Otherwise, or
without source, the call runs to completion: a write is never left in an unawaited coroutine. Each site is
classified once; afterwards an awaited call costs one dictionary lookup by ``f_lasti``.
"""

from __future__ import annotations

import ast
import dis
import inspect
import linecache
import os
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Final

ASYNC: Final = "async"
"""The caller awaits the value (now or later): hand it the coroutine."""
SYNC: Final = "sync"
"""The caller uses the value as a result (or drops it): run the operation to completion."""
FORWARDED: Final = "forwarded"
"""A plain function or lambda returns the value: its own caller decides."""

_GENERATOR_FLAGS = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
_MAX_SITES = 50_000
_MAX_DEPTH = 8
_AWAITING_CALLEES = frozenset(
    {
        "gather",
        "wait",
        "wait_for",
        "shield",
        "create_task",
        "ensure_future",
        "as_completed",
        "run_coroutine_threadsafe",
        "run_until_complete",
        "iscoroutine",
        "isawaitable",
        "Task",
        "asyncio.run",
        "uvloop.run",
    }
)
"""Callees that take a coroutine to await or schedule it."""
_COLLECTORS = frozenset({"append", "appendleft", "add", "extend", "insert", "put", "put_nowait"})
"""Methods that keep a value in a container, which may be gathered later."""

awaited_at: dict[int, CodeType] = {}
"""``f_lasti`` of an awaited call site -> its code object: the hot path's one lookup (``awaited_at.get(
frame.f_lasti) is frame.f_code``). Sites of different code at the same offset replace each other here and are
found in the full table instead, which puts the one called back."""
_sites: dict[tuple[int, int], Site] = {}
"""(id of the caller's code, its ``f_lasti``) -> the site."""
_kept_codes: dict[int, CodeType] = {}  # keeps each code object alive, so that its id is never reused
_sources: dict[str, tuple[str, _Source | None]] = {}


@dataclass
class Site:
    """One call site of a manager method: how its value is used, and what to tell the user about it."""

    mode: str
    where: str
    """``path:line`` of the call, the path relative to the working directory when it is under it."""
    callee: str
    """The called expression as written (``db.execute``, ``self.get_db().fetch_all``); ``db.<method>`` without
    source."""
    call: str
    """The call as a message shows it: ``db.connect()``, ``db.execute(...)``."""
    warned: bool = False


def mode_of(frame: FrameType) -> str:
    """The mode of the call that ``frame`` is making now (classified once per site)."""
    return site_of(frame, "").mode


def site_of(frame: FrameType, method: str) -> Site:
    """The site record of the call ``frame`` is making now; ``method`` names it when the source cannot."""
    code = frame.f_code
    lasti = frame.f_lasti
    key = (id(code), lasti)
    site = _sites.get(key)
    if site is None:
        if len(_sites) >= _MAX_SITES:
            forget_sites()
        site = _classify(code, lasti, frame.f_globals, method)
        _kept_codes[id(code)] = code
        _sites[key] = site
    if site.mode is ASYNC:
        awaited_at[lasti] = code
    return site


def awaits_value(frame: FrameType) -> bool:
    """Whether the value of the call ``frame`` is making will be awaited; a value a plain function returns is
    followed to that function's caller (a few levels at most)."""
    for _ in range(_MAX_DEPTH):
        mode = mode_of(frame)
        if mode is not FORWARDED:
            return mode is ASYNC
        back = frame.f_back
        if back is None:
            return False
        frame = back
    return False


def _classify(code: CodeType, lasti: int, module_globals: dict[str, object], method: str) -> Site:
    """The site of the CALL whose inline cache or opcode is at ``lasti`` in ``code``."""
    instructions = list(dis.get_instructions(code))
    call = next((ins for ins in reversed(instructions) if ins.offset <= lasti), None)
    following = next((ins.opname for ins in instructions if ins.offset > lasti), None)
    position = _position(code, call.offset if call is not None else lasti)
    where = f"{_shown_path(code.co_filename)}:{position[0] if position else '?'}"
    node, source = _call_node(code.co_filename, module_globals, position)
    callee = ast.unparse(node.func) if node is not None else f"db.{method}"
    bare = node is not None and not node.args and not node.keywords
    call = f"{callee}()" if bare else f"{callee}(...)"
    if following == "GET_AWAITABLE":
        mode = ASYNC
    elif following == "POP_TOP":
        mode = SYNC
    elif following == "RETURN_VALUE":
        mode = SYNC if code.co_flags & _GENERATOR_FLAGS else FORWARDED
    elif node is None or source is None:
        mode = SYNC
    else:
        mode = source.fate(node)
    return Site(mode, where, callee, call)


def _position(code: CodeType, offset: int) -> tuple[int, int, int, int] | None:
    """(line, column, end line, end column) of the instruction at ``offset``, when all are known."""
    positions = list(code.co_positions())
    index = offset // 2
    if index >= len(positions):
        return None
    line, end_line, column, end_column = positions[index]
    if line is None or end_line is None or column is None or end_column is None:
        return None
    return line, column, end_line, end_column


def _shown_path(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith("..") else relative


def _call_node(
    filename: str, module_globals: dict[str, object], position: tuple[int, int, int, int] | None
) -> tuple[ast.Call | None, _Source | None]:
    """The ``ast.Call`` at ``position`` in ``filename``'s source, and that source; Nones without source."""
    if position is None:
        return None, None
    lines = linecache.getlines(filename, module_globals)
    if not lines:
        return None, None
    text = "".join(lines)
    cached = _sources.get(filename)
    if cached is None or cached[0] != text:
        if len(_sources) >= 256:
            _sources.clear()
        cached = (text, _Source.parse(text))
        _sources[filename] = cached
    source = cached[1]
    if source is None:
        return None, None
    return source.calls.get(position), source


def _callee_name(func: ast.expr) -> str:
    """The called name: ``gather`` for ``asyncio.gather``, ``asyncio.run`` kept whole (``run`` alone says little)."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        if func.attr == "run" and isinstance(func.value, ast.Name):
            return f"{func.value.id}.run"
        return func.attr
    return ""


def _passes_on(parent: ast.AST | None, node: ast.AST) -> bool:
    """Whether ``parent`` only carries ``node``'s value on (a starred, a container element, a keyword, ...)."""
    if isinstance(parent, ast.Starred | ast.keyword):
        return True
    if isinstance(parent, ast.List | ast.Tuple):
        return isinstance(parent.ctx, ast.Load)
    if isinstance(parent, ast.Set):
        return True
    if isinstance(parent, ast.ListComp | ast.SetComp | ast.GeneratorExp):
        return node is parent.elt
    if isinstance(parent, ast.DictComp):
        return node is parent.value
    if isinstance(parent, ast.Dict):
        return any(node is value for value in parent.values)
    if isinstance(parent, ast.IfExp):
        return node is not parent.test
    return False


class _Source:
    """A parsed source file: its calls by position, and each node's parent."""

    def __init__(self, tree: ast.Module) -> None:
        self.parents: dict[ast.AST, ast.AST] = {}
        self.calls: dict[tuple[int, int, int, int], ast.Call] = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
            if isinstance(parent, ast.Call) and parent.end_lineno is not None and parent.end_col_offset is not None:
                self.calls[(parent.lineno, parent.col_offset, parent.end_lineno, parent.end_col_offset)] = parent

    @classmethod
    def parse(cls, text: str) -> _Source | None:
        try:
            return cls(ast.parse(text))
        except (SyntaxError, ValueError):
            return None

    def fate(self, node: ast.expr, depth: int = 0) -> str:
        """What becomes of ``node``'s value: ASYNC, SYNC or FORWARDED (see the module's docstring)."""
        if depth > _MAX_DEPTH:
            return SYNC
        current: ast.AST = node
        parent = self.parents.get(current)
        while _passes_on(parent, current):
            assert parent is not None
            current, parent = parent, self.parents.get(parent)
        if isinstance(parent, ast.Await):
            return ASYNC
        if isinstance(parent, ast.Call) and current is not parent.func:
            name = _callee_name(parent.func)
            if name in _AWAITING_CALLEES:
                return ASYNC
            func = parent.func
            if name in _COLLECTORS and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                return self._name_fate(func.value.id, parent, depth + 1)
            return self.fate(parent, depth + 1)
        if isinstance(parent, ast.Assign | ast.AnnAssign | ast.NamedExpr) and current is parent.value:
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            fates = {self._name_fate(t.id, parent, depth + 1) for t in targets if isinstance(t, ast.Name)}
            if isinstance(parent, ast.NamedExpr):
                fates.add(self.fate(parent, depth + 1))
            return ASYNC if ASYNC in fates else FORWARDED if FORWARDED in fates else SYNC
        if isinstance(parent, ast.Return) or (isinstance(parent, ast.Lambda) and current is parent.body):
            scope = parent if isinstance(parent, ast.Lambda) else self._scope(parent)
            if isinstance(scope, ast.Lambda):
                return FORWARDED
            if isinstance(scope, ast.FunctionDef) and not _is_generator(scope):
                return FORWARDED
        return SYNC

    def _name_fate(self, name: str, at: ast.AST, depth: int) -> str:
        """The fate of the value bound to ``name`` in the scope of ``at``: from every place that reads it."""
        fates = {
            self.fate(load, depth)
            for load in ast.walk(self._scope(at))
            if isinstance(load, ast.Name) and load.id == name and isinstance(load.ctx, ast.Load)
        }
        return ASYNC if ASYNC in fates else FORWARDED if FORWARDED in fates else SYNC

    def _scope(self, node: ast.AST) -> ast.AST:
        current: ast.AST | None = node
        while current is not None and not isinstance(
            current, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.Module
        ):
            current = self.parents.get(current)
        return current if current is not None else node


def _is_generator(function: ast.FunctionDef) -> bool:
    """Whether ``function`` itself yields (nested functions and lambdas aside)."""
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Yield | ast.YieldFrom):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            pending.extend(ast.iter_child_nodes(node))
    return False


def forget_sites() -> None:
    """Forget every classified call site, and which were warned about (for tests: each starts afresh)."""
    awaited_at.clear()
    _sites.clear()
    _kept_codes.clear()

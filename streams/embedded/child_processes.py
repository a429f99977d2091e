"""Child processes a command starts and owns (the embedded broker, worker processes): they die with it, and
they are stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (killed but not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():  # no /proc (not Linux): the signal is all there is to ask
        return True
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return False
    return (stat.rsplit(")", 1)[-1].split() or [""])[0] != "Z"


def die_with_parent() -> Callable[[], Any] | None:
    """On Linux, a pre-exec hook asking the kernel to SIGTERM the child when its parent dies (even by SIGKILL).

    The children run in sessions of their own, so a terminal's Ctrl-C reaches only the parent, which stops them
    in order."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return hook


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if the process has not exited after ``timeout_s`` (at once if the wait is
    cancelled)."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise

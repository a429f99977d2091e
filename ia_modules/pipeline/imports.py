"""Resolving ``module`` + ``name`` strings from pipeline files into Python objects, with errors that say why."""

from __future__ import annotations

import importlib
from typing import Any


class ImportProblem(Exception):
    """The object cannot be imported; the message says which part failed."""


def import_object(module_name: str, qualified_name: str) -> Any:
    """``getattr`` chain ``qualified_name`` on the imported ``module_name``."""
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportProblem(f"cannot import module '{module_name}': {exc}") from None
    except Exception as exc:  # a module that fails while importing is reported, not raised
        raise ImportProblem(f"importing module '{module_name}' raised {type(exc).__name__}: {exc}") from None
    for part in qualified_name.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportProblem(f"module '{module_name}' has no attribute '{qualified_name}'") from None
    return target


def import_callable(spec: str) -> Any:
    """``package.module:callable`` to the callable."""
    module_name, _, name = spec.partition(":")
    target = import_object(module_name, name)
    if not callable(target):
        raise ImportProblem(f"'{spec}' is not callable")
    return target

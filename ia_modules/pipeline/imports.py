"""Resolving ``module`` + ``name`` strings into Python objects, with errors that say why.

What a pipeline file names (a step's ``module`` and ``step_class``, a ``function`` condition's
``package.module:callable``) is code that runs for every event, so it is held to ``IA_STEP_PACKAGES``: the module
must be in one of those packages, checked before anything is imported; the name is one attribute of it (no dotted
chain, which could walk into anything the module imported); and the object found must be defined in an allowed
module (its ``__module__``), so a re-exported ``subprocess.call`` is refused. docs/security.md has the threat model.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

STEP_PACKAGES_SETTING = "IA_STEP_PACKAGES"
DEFAULT_STEP_PACKAGES = ("steps",)
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ImportProblem(Exception):
    """The object cannot be imported; the message says which part failed (``part``: ``module`` or ``name``)."""

    def __init__(self, message: str, part: str = "module") -> None:
        super().__init__(message)
        self.part = part


def step_packages() -> tuple[str, ...]:
    """The packages pipeline files may name code from: ``IA_STEP_PACKAGES`` (comma-separated), else ``steps``."""
    raw = os.environ.get(STEP_PACKAGES_SETTING)
    if raw is None:
        return DEFAULT_STEP_PACKAGES
    return tuple(package.strip() for package in raw.split(",") if package.strip())


def in_packages(module_name: str, packages: tuple[str, ...]) -> bool:
    """Whether ``module_name`` is one of ``packages`` or inside one (``steps.text`` is in ``steps``;
    ``stepsx`` is not)."""
    return any(module_name == package or module_name.startswith(package + ".") for package in packages)


def _outside(what: str, packages: tuple[str, ...]) -> str:
    allowed = ", ".join(packages) or "none"
    return f"{what} is outside {STEP_PACKAGES_SETTING} ({allowed}): pipeline files may only name code in those packages"


def import_object(module_name: str, qualified_name: str) -> Any:
    """``getattr`` chain ``qualified_name`` on the imported ``module_name``, for code the operator configured
    (``IA_SERVICES``); what a pipeline file names goes through ``import_from_pipeline``."""
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
            raise ImportProblem(f"module '{module_name}' has no attribute '{qualified_name}'", "name") from None
    return target


def import_callable(spec: str) -> Any:
    """``package.module:callable`` to the callable (operator configuration: not held to the step packages)."""
    module_name, _, name = spec.partition(":")
    target = import_object(module_name, name)
    if not callable(target):
        raise ImportProblem(f"'{spec}' is not callable", "name")
    return target


def import_from_pipeline(module_name: str, name: str, packages: tuple[str, ...] | None = None) -> Any:
    """The object ``name`` of ``module_name`` as a pipeline file names it, held to ``packages`` (default:
    ``step_packages()``): checked before the module is imported, and again on what was found."""
    allowed = step_packages() if packages is None else packages
    if not _MODULE_PATH.fullmatch(module_name):
        raise ImportProblem(f"'{module_name}' is not a module path (package.module)")
    if not _NAME.fullmatch(name):
        raise ImportProblem(f"'{name}' is not a plain name: name one attribute of the module, no dotted path", "name")
    if not in_packages(module_name, allowed):
        raise ImportProblem(_outside(f"module '{module_name}'", allowed))
    found = import_object(module_name, name)
    defined_in = getattr(found, "__module__", None)  # classes, functions and their instances have one
    if defined_in is not None and not in_packages(str(defined_in), allowed):
        raise ImportProblem(_outside(f"'{module_name}:{name}' is defined in '{defined_in}', which", allowed), "name")
    return found


def pipeline_callable(spec: str, packages: tuple[str, ...] | None = None) -> Any:
    """``package.module:callable`` as a pipeline file's function condition names it, held to the step packages."""
    module_name, colon, name = spec.partition(":")
    if not colon:
        raise ImportProblem(f"'{spec}' is not package.module:callable")
    target = import_from_pipeline(module_name, name, packages)
    if not callable(target):
        raise ImportProblem(f"'{spec}' is not callable", "name")
    return target

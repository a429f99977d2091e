"""Step: the unit of work. Subclasses override ``async run(data) -> dict``; the framework calls ``work``."""

from __future__ import annotations

import logging
from typing import Any

from .errors import StepOutputError
from .services import ServiceRegistry, current_execution_id


class RunIdFilter(logging.Filter):
    """Puts the run in progress on each record of a step's logger: ``record.run_id`` (None outside a run) and,
    in a run, ``[run <id>] `` before the message, so any log format shows it without naming the field."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id = getattr(record, "run_id", None) or current_execution_id.get()  # a caller's extra= wins
        record.run_id = run_id
        if run_id is not None:
            prefix = f"[run {run_id}] "
            record.msg = (prefix.replace("%", "%%") if record.args else prefix) + str(record.msg)
        return True


_RUN_ID_FILTER = RunIdFilter()


def step_logger(step_class: type, step_id: str) -> logging.Logger:
    """The logger of step ``step_id``: ``<module defining its class>.<step id>`` (``steps.data_steps.loader``),
    so the module's logger settings apply to its steps and two steps of one class still log apart."""
    logger = logging.getLogger(f"{step_class.__module__}.{step_id}")
    logger.addFilter(_RUN_ID_FILTER)  # once: a logger keeps one copy of a filter
    return logger


def checked_output(step: Step, result: Any) -> dict[str, Any]:
    """``result`` if ``step.run`` returned a dict; StepOutputError saying what it returned otherwise."""
    if type(result) is not dict and not isinstance(result, dict):
        raise StepOutputError(
            f"step '{step.name}' ({type(step).__name__}.run) returned {type(result).__name__}, expected a dict"
        )
    return result


class Step:
    """A pipeline step, constructed as ``Step(name, config)``; ``name`` is the step's id in its pipeline."""

    _logger: logging.Logger | None = None

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        self.name = name
        self.config: dict[str, Any] = dict(config) if config else {}
        self.services: ServiceRegistry | None = None
        self._logger = step_logger(type(self), name)

    @property
    def logger(self) -> logging.Logger:
        """The step's logger (see :func:`step_logger`); in a run its records carry the run id. Usable in
        ``__init__``, even before ``super().__init__`` (then named after the class until the id is known)."""
        if self._logger is not None:
            return self._logger
        name = self.__dict__.get("name")
        logger = step_logger(type(self), name if isinstance(name, str) else type(self).__name__)
        if isinstance(name, str):
            self._logger = logger
        return logger

    @logger.setter
    def logger(self, logger: logging.Logger) -> None:
        self._logger = logger

    def set_services(self, services: ServiceRegistry | None) -> None:
        self.services = services

    def get_service(self, name: str) -> Any:
        """The service registered as ``name``, or None."""
        return self.services.get(name) if self.services is not None else None

    def get_db(self) -> Any:
        return self.get_service("database")

    def get_http(self) -> Any:
        return self.get_service("http")

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        """Do the step's work on ``data`` and return a JSON-serialisable dict. Subclasses override this."""
        raise NotImplementedError(f"{type(self).__name__} must implement async run(data)")

    async def work(self, data: dict[str, Any]) -> dict[str, Any]:
        """Run the step and check that it returned a dict, as the kernel does (how long it took is in the
        run's trace)."""
        return checked_output(self, await self.run(data))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

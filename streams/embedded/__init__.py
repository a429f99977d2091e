"""The embedded defaults for trying things out: the Tansu broker (``broker``) and PostgreSQL (``postgres``) as
child processes that die with the command that started them (``child_processes``)."""

__all__: list[str] = []

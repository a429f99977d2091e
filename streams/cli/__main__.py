"""``python -m streams.cli``: the ``ia-modules`` command (worker processes are started this way)."""

from streams.cli import main

main()

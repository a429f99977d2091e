"""What running a worker as a command takes: the event loop (``event_loop``), the services steps get
(``services``), one worker process with its broker, database, web port and signals (``serve``), and several
worker processes behind one health page (``supervisor``).

Its modules are the API (``streams.process.serve.serve``, ...): the settings import ``event_loop``, and ``serve``
imports the settings, so this package imports none of them itself."""

__all__ = ["event_loop", "serve", "services", "supervisor"]

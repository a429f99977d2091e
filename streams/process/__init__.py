"""What running a worker as a command takes: the event loop, the services steps get, the worker process with its
broker, database, web port and signals (``serve``), and several worker processes behind one health page
(``supervisor``)."""

__all__: list[str] = []

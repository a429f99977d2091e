"""The streaming runtime: each Kafka event becomes one pipeline run, executed stage by stage.

At the top, what a reader looks for first: ``settings`` (IA_* settings), ``topology`` (a pipeline's stages and
topics), ``envelope`` (a run between stages), ``stage_runner`` (runs a stage for a record), ``worker`` (the
consumer loop) and ``app`` (the Faust app: lifecycle, ``/health``, timers). The packages: ``kafka`` (clients,
admin, producing, reading), ``joins`` (join state), ``sink`` (the commit order, results and dead letters),
``embedded`` (broker and PostgreSQL), ``process`` (running it as a command) and ``cli``. docs/architecture.md
draws the data flow.
"""

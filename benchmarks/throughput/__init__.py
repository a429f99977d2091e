"""The parts of ``benchmarks.streaming_throughput`` (the command and its documentation live there): events,
variant launchers, the measuring of one variant and the report, one module each."""

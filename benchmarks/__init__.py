"""Benchmarks: ratios against baselines measured in the same run (benchmarks/README.md).

The bench pipeline's steps live in ``benchmarks.bench_steps``, so every benchmark (and every worker it starts,
through ``throughput.launch.clean_env``) allows that package besides ``steps`` (IA_STEP_PACKAGES)."""

import os

STEP_PACKAGES = "steps,benchmarks"
os.environ["IA_STEP_PACKAGES"] = STEP_PACKAGES

"""Test-wide settings: the tests' own step modules (``tests.*``) may be named by the pipeline files they build, as
``steps`` may (IA_STEP_PACKAGES); worker and CLI processes the tests start inherit it."""

import os

os.environ["IA_STEP_PACKAGES"] = "steps,tests"

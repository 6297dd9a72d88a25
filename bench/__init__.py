"""Benchmarks: ecs-fanout against the emulated ECS, and against `ecs deploy` looped over services.

`python -m bench --quick` runs them (see `bench/__main__.py`); `bench/emulator.py` is the AWS
they talk to, in a process of its own; `bench/harness.py` runs the tools as their users do
(subprocesses) and measures them. BENCHMARKS.md holds the figures and what they mean.
"""

"""Benchmarks: ecs-fanout against the emulated ECS, and against `ecs deploy` looped over services.

`python -m bench --quick` runs them (see `bench/__main__.py`, the CLI, and `bench/run.py`, what
one run does); `bench/emulator.py` is the AWS they talk to, in a process of its own, and
`bench/harness.py` runs the tools as their users do (subprocesses, started by
`bench/spawner.py`) and measures them. BENCHMARKS.md holds the figures and what they mean.
"""

"""ecs-fanout's orchestrator: reads a spec, fans jobs out, follows every rollout live.

Flow: `spec` (load + validate) -> `plan` (one `DeployJob` per service, pure) -> `preflight`
(read-only checks of every target against AWS; any problem refuses the run) -> `run` (one anyio
task group: `feed` subscribes to the run's Redis channel first, an executor starts the jobs,
events are folded into `state`, pure) -> a renderer (`render`: --json / --plain, or the TUI)
-> exit code. The deploy's steps run in one event loop (`deploy_steps`), preflight beside the
executor's set-up (`checked_run`). `cli` only parses and dispatches (the deploy command is `deploy`; `plan`,
`attach`, `rollback` and `iam-policy` live with their modules), every command through
`boundary` (expected failures: one line and an exit code of `exits`); `settings` reads the
environment; `sandbox` holds the AWS emulator and rollout simulator that `--sandbox`, the tests
and the benchmarks use. A spec with waves (`spec_waves`, `waves`) is run wave by wave by
`wave_run` through each wave's gate (`gate_run`, judged by `gates`; said as `gate_events`,
folded by `wave_state`); `approve`/`stop` (`approve_command`, `resume`) decide a gate.
"""

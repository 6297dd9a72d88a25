"""ecs-fanout's worker: everything that runs inside the Lambda function (or in-process).

The Lambda zip ships only this package and its dependencies, so the wire contract lives here
and the orchestrator imports it from here.

- `contract`: `DeployJob` (orchestrator -> worker) and `WorkerEvent` (worker -> orchestrator).
- Pure: `images` (image references), `taskdef` (re-registration requests), `rollout`
  (what became of our deployment), `revisions` (which old revisions to deregister),
  `registries` (the registry allow-list, from the worker's own environment).
- I/O: `engine` (sequences a job's steps, records and reports each), `ecs_calls` (the ECS
  calls, refusals turned into messages), `throttle` (retry while throttled, heartbeats),
  `budget` (token buckets in Redis shared by every worker of the account and region),
  `publisher` (Redis PUBLISH + XADD), `ledger` (idempotency across SQS redeliveries), `aws`
  (clients), `keys` (Redis key layout), `handler` (the Lambda entry point).
"""

"""ecs-fanout's worker: everything that runs inside the Lambda function (or in-process).

The Lambda zip ships only this package and its dependencies, so the wire contract lives here
and the orchestrator imports it from here.

- `contract`: `DeployJob` (orchestrator -> worker) and `WorkerEvent` (worker -> orchestrator).
- Pure: `images` (image references), `taskdef` (re-registration requests), `rollout`
  (what became of our deployment).
- I/O: `engine` (the deploy steps, aioboto3), `publisher` (Redis PUBLISH + XADD), `ledger`
  (idempotency across SQS redeliveries), `aws` (clients), `keys` (Redis key layout).
"""

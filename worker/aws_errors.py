"""AWS errors in words: what went wrong, whether credentials are the cause, and what a job left.

One place for the worker (its terminal messages) and the CLI's error boundary (its one-line
failures) to recognise credential problems and say how to give credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoAuthTokenError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
    UnknownCredentialError,
)

if TYPE_CHECKING:
    from worker.ledger import JobRecord

__all__ = ["CREDENTIALS_HINT", "aws_failure_message", "credentials_problem", "error_message"]


def error_message(exc: ClientError | BotoCoreError) -> str:
    """ "Code: message" of an AWS refusal; the text of a failure with no answer (e.g. no connection)."""
    if not isinstance(exc, ClientError):
        return str(exc)
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', str(exc))}"


# Failures to sign a request: nothing reached AWS. And AWS's answers to a request signed with
# keys it does not accept: nothing was done.
_CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    UnknownCredentialError,
    NoAuthTokenError,
    TokenRetrievalError,
    SSOError,
    ProfileNotFound,
)
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)
CREDENTIALS_HINT = (
    "give ecs-fanout AWS credentials: a profile (AWS_PROFILE or --profile), keys in the environment "
    "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or `aws sso login` for an SSO profile"
)


def credentials_problem(exc: ClientError | BotoCoreError) -> bool:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in _CREDENTIAL_CODES
    return isinstance(exc, _CREDENTIAL_ERRORS)


def aws_failure_message(exc: ClientError | BotoCoreError, at_start: JobRecord, now: JobRecord) -> str:
    """The terminal message of a job an AWS error ended: the error, and what it left behind.

    UpdateService is the one call that changes the service, and the ledger tells how far the
    job got (`at_start`: when this worker took it; `now`: when the error ended it). A deployment
    id is recorded once UpdateService answered: a rollout may go on. A revision recorded with
    no deployment id means UpdateService was next, and may have been sent without an answer
    (by this worker, or by one before it that died), unless the error proves this worker sent
    nothing (it had no usable credentials) and no worker before it got that far. Otherwise no
    UpdateService was sent for this job: nothing was changed.
    """
    reason = error_message(exc)
    if credentials := credentials_problem(exc):
        reason += f" ({CREDENTIALS_HINT})"
    if now.deployment_id is not None:
        effect = (
            f"deployment {now.deployment_id} was started: check the service, "
            "a rollout may still be in progress"
        )
    elif now.task_definition_arn is not None and not (credentials and at_start.task_definition_arn is None):
        effect = (
            f"UpdateService to {now.task_definition_arn} may have reached ECS: check the service, "
            "a rollout may be in progress"
        )
    elif now.task_definition_arn is not None:
        effect = (
            "nothing was changed on the service (UpdateService was never sent; "
            f"{now.task_definition_arn.rsplit('/', 1)[-1]} is not in use)"
        )
    else:
        effect = "nothing was changed (UpdateService was never sent)"
    return f"AWS call failed: {reason}; {effect}"

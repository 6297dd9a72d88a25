"""Logging for every command: one setup, and nothing secret on stderr at any level.

Without `-v`, warnings only, as `ecs-fanout: ...` lines. With `-v`, our own debug logs
(`orchestrator`, `worker`, `tui`, `ecs-fanout`) with times and sources; the AWS SDK's and HTTP
libraries' loggers stay at WARNING: their debug logs print whole request and response bodies
(a task definition with its `environment` and `secrets`, a Lambda function's environment with
`REDIS_URL`) and signed headers. `--debug-aws` turns those wire logs on, for when a request
itself is in question.

Whatever the level, every line passes `Redactor` on its way out (a filter on the handler, so
it sees the records of every logger): values of `value`/`valueFrom` keys (container
environment variables, secrets, environment files), of `Variables` (a function's environment),
of credentials (secret keys, session tokens, passwords) and of the `Authorization` and
`X-Amz-Security-Token` headers become `***`, and so do Redis URLs' passwords. It works on the
rendered text, in the forms botocore logs: JSON bodies, Python reprs of dicts and of bytes,
and headers.
"""

from __future__ import annotations

import logging
import re
import sys

__all__ = ["AWS_LOGGERS", "OUR_LOGGERS", "REDACTED", "Redactor", "configure_logging", "redact"]

OUR_LOGGERS = ("ecs-fanout", "orchestrator", "worker", "tui", "pack")
AWS_LOGGERS = ("botocore", "aiobotocore", "boto3", "s3transfer", "urllib3", "aiohttp")
REDACTED = "***"

# A quoted string in JSON or a Python repr: "…" or '…', with backslash escapes inside. A quote
# that is not followed by what may follow a string (`,:}])` or the end) is taken as part of it:
# a value's escaped quote, once inside a bytes repr, shows as `\\"`.
_QUOTED = r"""(?:"(?:\\.|[^"\\]|"(?!\s*(?:[,:}\])]|$)))*"|'(?:\\.|[^'\\]|'(?!\s*(?:[,:}\])]|$)))*')"""
_SECRET_KEYS = (
    r"value|valueFrom|secretAccessKey|SecretAccessKey|aws_secret_access_key|sessionToken|"
    r"SessionToken|aws_session_token|Token|password|Password|credentials|Credentials"
)
# "value": "…"  'valueFrom': '…'  (the key quoted as its value is, or not at all in a repr)
_KEY_VALUE = re.compile(rf"""(?P<key>(?P<q>["']?)\b(?:{_SECRET_KEYS})(?P=q)\s*[:=]\s*)(?P<value>{_QUOTED})""")
# "Variables": {"REDIS_URL": "…", …}: every value of the object
_VARIABLES = re.compile(r"""(?P<head>["']Variables["']\s*:\s*\{)(?P<body>[^{}]*)\}""")
_ENTRY = re.compile(rf"""(?P<key>{_QUOTED}\s*:\s*)(?P<value>{_QUOTED})""")
# Headers: 'Authorization': b'AWS4-HMAC-SHA256 …', X-Amz-Security-Token: …
_HEADER = re.compile(
    rf"""(?P<key>(?P<q>["']?)(?:Authorization|X-Amz-Security-Token)(?P=q)\s*[:=]\s*b?)"""
    rf"""(?P<value>{_QUOTED}|[^\s,}}]+)""",
    re.IGNORECASE,
)
# XML (query-protocol answers, e.g. STS): <SecretAccessKey>…</SecretAccessKey>
_XML = re.compile(r"<(?P<tag>SecretAccessKey|SessionToken|Password)>[^<]*</(?P=tag)>")
# redis://user:password@host, rediss://:password@host
_URL_PASSWORD = re.compile(r"(?P<head>\brediss?://[^:@/\s'\"]*:)[^@/\s'\"]+@")


def _masked(quoted: str) -> str:
    return f"{quoted[0]}{REDACTED}{quoted[0]}" if quoted[:1] in ("'", '"') else REDACTED


def redact(text: str) -> str:
    """`text` with every secret value this module knows of replaced by `***`."""
    text = _VARIABLES.sub(
        lambda m: m["head"] + _ENTRY.sub(lambda e: e["key"] + _masked(e["value"]), m["body"]) + "}", text
    )
    text = _KEY_VALUE.sub(lambda m: m["key"] + _masked(m["value"]), text)
    text = _HEADER.sub(lambda m: m["key"] + _masked(m["value"]), text)
    text = _XML.sub(lambda m: f"<{m['tag']}>{REDACTED}</{m['tag']}>", text)
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}@", text)


class Redactor(logging.Filter):
    """Renders each record once and keeps the redacted text (tracebacks included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure_logging(verbose: bool, debug_aws: bool = False) -> None:
    """Warnings as `ecs-fanout: ...` lines on stderr; with `verbose`, our debug logs with times
    and sources; with `debug_aws`, the AWS SDK's wire logs too. Redacted at every level."""
    handler = logging.StreamHandler(sys.stderr)
    detailed = verbose or debug_aws
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s" if detailed else "ecs-fanout: %(message)s"
        )
    )
    handler.addFilter(Redactor())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.NOTSET)
    for name in AWS_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug_aws else logging.WARNING)

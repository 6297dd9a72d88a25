# ecs-fanout in a container.
#
#   docker compose up                                  # the sandbox demo, with a Redis next to it
#   docker build -t ecs-fanout .
#   docker run --rm -e REDIS_URL -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_SESSION_TOKEN \
#     -e AWS_REGION ecs-fanout specs/default.toml --plain
#   docker run --rm -it ...                            # -it: the live view (TUI)
#
# Two stages: the builder builds ecs-fanout's wheel and installs it, with its runtime dependencies
# only, into a virtual environment; the final image gets that environment and nothing else (no
# compiler, no build tools, no dev extras). redis-server is NOT in the image: Redis comes from
# REDIS_URL (compose.yaml runs one). No apt packages are needed at all.
#
# tests/test_container.py parses the builder stage (its COPY and RUN lines) and runs the same
# commands in a fresh virtual environment: keep them plain `python -m venv` / `pip` commands on
# /opt/ecs-fanout.

FROM python:3.12-slim AS builder

# (pip compiles the installed modules: the image ships their bytecode, so start-up stays fast.)
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

WORKDIR /src
COPY pyproject.toml README.md pack.py ./
COPY worker/ worker/
COPY orchestrator/ orchestrator/
COPY tui/ tui/

# The venv keeps its pip on purpose: `--executor lambda` packs the worker's Lambda zip with
# `python -m pip install --target ...` (pack.py).
RUN python -m venv /opt/ecs-fanout
RUN /opt/ecs-fanout/bin/pip wheel --no-cache-dir --no-deps --wheel-dir wheels . \
    && /opt/ecs-fanout/bin/pip install --no-cache-dir wheels/ecs_fanout-*.whl


FROM python:3.12-slim

LABEL org.opencontainers.image.title="ecs-fanout" \
      org.opencontainers.image.description="Roll new container images out to many Amazon ECS services at once." \
      org.opencontainers.image.licenses="MIT"

# TERM/COLORTERM: with `docker run -it` the live view gets 256 colours and true colour (Docker
# itself would only say TERM=xterm). Without a terminal the CLI prints plain lines (or --json).
ENV PATH=/opt/ecs-fanout/bin:$PATH \
    HOME=/home/ecs-fanout \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TERM=xterm-256color \
    COLORTERM=truecolor

# A home directory: ~/.aws (mount it read-only) and pack.py's cache (~/.cache/ecs-fanout). It is
# writable by any uid (sticky, like /tmp) so that `docker run --user "$(id -u)"`, the way to read a
# mounted ~/.aws that only its owner may read, still has a working home.
RUN groupadd --system --gid 10001 ecs-fanout \
    && useradd --system --no-log-init --create-home --uid 10001 --gid ecs-fanout ecs-fanout \
    && chmod 1777 /home/ecs-fanout

# Same path as in the builder: the console scripts' shebangs point into it.
COPY --from=builder /opt/ecs-fanout /opt/ecs-fanout
WORKDIR /app
COPY specs/ specs/

USER 10001:10001
# `docker stop` / compose's Ctrl-C: SIGINT is ecs-fanout's Ctrl-C (it prints the run id and which
# services ECS is still rolling out, and exits 130); as PID 1, Python would ignore SIGTERM.
STOPSIGNAL SIGINT
ENTRYPOINT ["python", "-m", "orchestrator"]
CMD ["--help"]

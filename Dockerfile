# ecs-fanout in a container.
#
#   docker compose up                                  # the sandbox demo, with a Redis next to it
#   docker build -t ecs-fanout .                       # the product: no moto, no `--sandbox`
#   docker build --target sandbox -t ecs-fanout:sandbox .   # ... plus the sandbox extra (moto)
#   docker run --rm -e REDIS_URL -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_SESSION_TOKEN \
#     -e AWS_REGION ecs-fanout specs/default.toml --plain
#   docker run --rm -it ...                            # -it: the live view (TUI)
#
# Stages: the builder builds ecs-fanout's wheel and installs it, with its runtime dependencies
# only, into a virtual environment; sandbox-builder adds the `sandbox` extra (moto) to that
# environment. `runtime` is the image without any environment; the `sandbox` target gets
# sandbox-builder's environment, the default (last) target the builder's: neither has a compiler,
# build tools or dev extras, and the default has no moto. redis-server is NOT in the image:
# Redis comes from REDIS_URL (compose.yaml runs one). No apt packages are needed at all.
#
# tests/test_container.py parses the builder stages (their COPY and RUN lines) and runs the same
# commands in fresh virtual environments: keep them plain `python -m venv` / `pip` / `set --`
# commands on /opt/ecs-fanout.

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


# The same environment plus the `sandbox` extra: `pip install 'ecs-fanout[sandbox]'` from the wheel.
FROM builder AS sandbox-builder
RUN set -- wheels/ecs_fanout-*.whl \
    && /opt/ecs-fanout/bin/pip install --no-cache-dir "$1[sandbox]"


FROM python:3.12-slim AS runtime

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

WORKDIR /app
COPY specs/ specs/

USER 10001:10001
# `docker stop` / compose's Ctrl-C: SIGINT is ecs-fanout's Ctrl-C (it prints the run id and which
# services ECS is still rolling out, and exits 130); as PID 1, Python would ignore SIGTERM.
STOPSIGNAL SIGINT
ENTRYPOINT ["python", "-m", "orchestrator"]
CMD ["--help"]


# `--target sandbox`: `--sandbox` works (compose.yaml's demo builds this target).
# Same path as in the builder: the console scripts' shebangs point into it.
FROM runtime AS sandbox
COPY --from=sandbox-builder /opt/ecs-fanout /opt/ecs-fanout


# The default target: the product alone (`--sandbox` says which extra it needs, and exits 2).
FROM runtime
COPY --from=builder /opt/ecs-fanout /opt/ecs-fanout

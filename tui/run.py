"""Running the live view to the run's end: the terminal restored, the summary printed after."""

from __future__ import annotations

from orchestrator.exits import ExitCode
from orchestrator.render import summary_table
from orchestrator.state import RunState, exit_code
from tui.app import Decide, FanoutApp, Runner
from tui.held_logs import logs_held

__all__ = ["run_tui"]


def run_tui(
    state: RunState,
    runner: Runner,
    *,
    spec_path: str = "",
    exit_on_done: bool = False,
    confirm_quit: bool = True,
    caller: str | None = None,
    decide: Decide | None = None,
) -> int:
    """Run the app until the user quits; the run's exit code, or 130 when left unfinished.

    Re-raises what the runner raised (a Redis that cannot be reached, ...), once the
    terminal is restored. The summary table is printed after, for the scrollback. `caller`:
    who runs it (STS GetCallerIdentity's account or ARN), shown in the header.
    """
    app = FanoutApp(
        state,
        runner,
        spec_path=spec_path,
        exit_on_done=exit_on_done,
        confirm_quit=confirm_quit,
        caller=caller,
        decide=decide,
    )
    with logs_held():
        try:
            app.run()
        except KeyboardInterrupt:  # a SIGINT from outside (`kill -INT`, `docker stop`)
            return ExitCode.INTERRUPTED
    if app.error is not None:
        raise app.error
    if not state.done:
        return ExitCode.INTERRUPTED
    print(summary_table(state), flush=True)
    return exit_code(state)

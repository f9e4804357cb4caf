"""Surviving a killed process: who owns work in progress, whether that owner is gone, and the
test hook that stops a command at a named stage so the fault tests can kill it there.

* :func:`owner` names this process as ``host``, ``pid`` and ``start`` (the process's start time
  in clock ticks since boot, from ``/proc``; empty where there is no ``/proc``). Work in
  progress (an MLflow run, a run folder being written) records it.
* :func:`owner_gone` tells whether a recorded owner on this host has died: its pid is free, is
  a zombie, or now belongs to a process started at another time (a reused pid). An owner on
  another host is never called gone here (its pid means nothing on this host); callers decide
  with a timeout.
* :func:`pause_point`: with ``PROPENSITY_TEST_PAUSE_AT=<stage>`` in the environment (only ever
  set by the fault tests), a command that reaches ``<stage>`` writes ``PROPENSITY_PAUSED
  <stage>`` on stderr and sleeps, so a test can ``kill -9`` it at a known point. Unset, it does
  nothing. The stages (of ``propensity train``, and of the history a scoring appends to) are
  :data:`STAGES`.
"""

from __future__ import annotations

import os
import socket
import sys
import time

PAUSE_ENV = "PROPENSITY_TEST_PAUSE_AT"
PAUSE_MARKER = "PROPENSITY_PAUSED"
STAGES = {
    "run_folder.written": "the run folder is complete under its temporary name, not renamed yet",
    "tracking.started": "the MLflow run exists (RUNNING, owner tagged), nothing logged yet",
    "tracking.logged": "artifacts, both heads' MLflow models and the metrics are logged",
    "tracking.registered": "both heads have a new model version (no alias); run still RUNNING",
    "tracking.committed": "the run ended FINISHED; the challenger aliases have not moved yet",
    "history.inserting": "a scoring's rows are inserted into the history, not committed yet",
}


def pause_point(stage: str) -> None:
    """The fault tests' hook (see the module docstring); a no-op unless asked for ``stage``."""
    if os.environ.get(PAUSE_ENV) != stage:
        return
    sys.stderr.write(f"{PAUSE_MARKER} {stage}\n")
    sys.stderr.flush()
    time.sleep(600)


def host() -> str:
    return socket.gethostname()


def _start_ticks(pid: int) -> str | None:
    """A process's start time (clock ticks since boot) and whether it is a zombie, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # after "pid (command) "
    state, start = fields[0], fields[19]
    return "zombie" if state in ("Z", "X") else start


def owner() -> dict[str, str]:
    """This process as the owner of work in progress."""
    pid = os.getpid()
    return {"host": host(), "pid": str(pid), "start": _start_ticks(pid) or ""}


def owner_gone(recorded: dict[str, str]) -> bool:
    """Whether an owner recorded by :func:`owner` on this host is no longer running."""
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return False
    if recorded.get("host") != host() or not str(recorded.get("pid", "")).isdigit():
        return False
    pid = int(recorded["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    now = _start_ticks(pid)
    if now == "zombie":
        return True
    return bool(recorded.get("start")) and now is not None and now != recorded["start"]

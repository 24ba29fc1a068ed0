"""Per-step timestamps across processes: where one closed-loop step's time goes.

Off unless the environment variable ``EXPO_STEP_TRACE`` names a directory (``bench_ros --trace
DIR`` sets it for the graph it launches; any ``ros2 launch`` inherits it from the shell). Then
each node that traces keeps ``(event, stamp_ns, t_ns)`` rows in memory, where ``stamp_ns`` is the
observation stamp the event belongs to and ``t_ns`` is ``time.monotonic_ns()`` (CLOCK_MONOTONIC,
one clock for every process of the machine), and writes them at exit to
``DIR/<node>-<pid>.csv``, the node named by its fully qualified name (``/actor_0/policy_node``
-> ``actor_0_policy_node``) (header ``event,stamp_ns,t_ns``; a last row ``dropped,<count>,0`` when
the trace was full). ``python -m expo_sim.ros.trace_report DIR`` joins the files by stamp into the
step's segments.

A mark costs one ``monotonic_ns`` call and one list append (well under a microsecond); a trace
keeps at most ``capacity`` rows (the first ones) and counts what it dropped. Nothing here knows
ROS: a node names itself and calls :meth:`StepTrace.mark`.
"""

from __future__ import annotations

import atexit
import os
import re
import time
from pathlib import Path

#: The environment variable that turns tracing on: a directory for the trace files.
ENV = "EXPO_STEP_TRACE"
#: Rows kept per process: ~20k lockstep steps of the policy node (~10 events each), ~8 MB of CSV
#: and a few tens of MB in memory at most.
DEFAULT_CAPACITY = 200_000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class StepTrace:
    """One process's trace rows (module doc); ``directory`` None: every mark is a no-op."""

    def __init__(self, name: str, directory: str | Path | None, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError(f"StepTrace capacity must be > 0, got {capacity}")
        self.name = _SAFE.sub("_", name).strip("_") or "node"
        self.directory = Path(directory) if directory else None
        self.capacity = capacity
        self.rows: list[tuple[str, int, int]] = []
        self.dropped = 0

    @classmethod
    def from_env(cls, name: str) -> StepTrace:
        """Tracing as :data:`ENV` says; when on, the rows are written at interpreter exit too."""
        trace = cls(name, os.environ.get(ENV) or None)
        if trace.enabled:
            atexit.register(trace.write)
        return trace

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def mark(self, event: str, stamp_ns: int, t_ns: int | None = None) -> None:
        """Record ``event`` of the step stamped ``stamp_ns`` at ``t_ns`` (default: now)."""
        if self.directory is None:
            return
        if len(self.rows) >= self.capacity:
            self.dropped += 1
            return
        self.rows.append((event, int(stamp_ns), time.monotonic_ns() if t_ns is None else int(t_ns)))

    @property
    def path(self) -> Path | None:
        """The file :meth:`write` writes (``DIR/<name>-<pid>.csv``), None when tracing is off."""
        return None if self.directory is None else self.directory / f"{self.name}-{os.getpid()}.csv"

    def write(self) -> Path | None:
        """Write every row so far (again, if called twice: the file is rewritten whole); the
        path, or None when tracing is off. A failure to write is an OSError."""
        path = self.path
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w") as f:
            f.write("event,stamp_ns,t_ns\n")
            f.writelines(f"{e},{s},{t}\n" for e, s, t in self.rows)
            if self.dropped:
                f.write(f"dropped,{self.dropped},0\n")
        tmp.replace(path)
        return path

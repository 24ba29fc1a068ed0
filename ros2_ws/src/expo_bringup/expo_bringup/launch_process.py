"""``ros2 launch`` as a supervised child process (what ``make sim`` starts the graph with).

Process management only. ``ros2 launch --noninteractive <package> <file> <name>:=<value> ...``
runs in its own process group (a Ctrl-C in the parent's terminal does not reach it: the parent
decides when it stops), with SIGINT and SIGTERM at their defaults whatever the parent ignores (a
shell starts background jobs with SIGINT ignored, and ``ros2 launch`` would then ignore SIGINT
for good). :meth:`LaunchProcess.stop` sends SIGINT to ``ros2 launch``, which, non-interactive,
forwards it to every node once and waits for them (escalating to SIGTERM, then SIGKILL, per
node); SIGTERM to launch would orphan them (ros2/launch#666). Whatever still runs in its process
group after ``stop_timeout_s`` gets SIGKILL.

With ``sched_fifo`` P (1-99) the child is put at SCHED_FIFO priority P before it runs ``ros2
launch``: launch, every node it starts and every thread of theirs (Fast DDS's included) inherit
it, while the parent (a session's monitor, a bench) stays at its own scheduling. It models a
robot PC where the control graph runs real time; it needs the permission to (root, or an rtprio
limit: ``ulimit -r``); :meth:`LaunchProcess.start` tries it first and, when the kernel refuses,
says why and starts nothing. Two drop back to normal scheduling by design: the policy node's
weights worker (a hot swap never preempts a decision) and the learner, all its threads (it
trains without pause).

Every output line (stdout and stderr merged) goes to ``sink``; launch's own lines about its
processes (``[INFO] [policy_node-2]: process has finished cleanly [pid 7]``, ``[ERROR]
[sim_bridge-1]: process has died [pid 8, exit code 1, ...]``) give each node's exit code, keyed
by its process name without the counter (``launch_graph.node_label``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import IO

from expo_ros.realtime import RealtimeError, check_priority, probe_fifo, set_fifo

from expo_bringup.runner import new_session_default_signals, popen_lines

log = logging.getLogger(__name__)

_STARTED = re.compile(r"^\[INFO\] \[(?P<name>.+)-(?P<n>\d+)\]: process started with pid \[(?P<pid>\d+)\]")
_CLEAN = re.compile(r"^\[INFO\] \[(?P<name>.+)-(?P<n>\d+)\]: process has finished cleanly")
_DIED = re.compile(
    r"^\[ERROR\] \[(?P<name>.+)-(?P<n>\d+)\]: process has died \[pid \d+, exit code (?P<code>-?\d+)"
)


def exit_code(returncode: int) -> int:
    """Popen/launch return code -> shell-style exit code (killed by signal N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def ros2_executable() -> str:
    """The ``ros2`` command; FileNotFoundError saying how to get it otherwise."""
    path = shutil.which("ros2")
    if path is None:
        raise FileNotFoundError(
            "'ros2' not found: run `make setup` and `source scripts/env.sh` (it builds ros2 launch "
            "into .ros_tools), or source a ROS 2 install"
        )
    return path


def _child_setup(sched_fifo: int) -> None:
    """In the child before exec: its own session and default signals, then the scheduling."""
    new_session_default_signals()
    if sched_fifo:
        set_fifo(sched_fifo)


class LaunchProcess:
    """``ros2 launch`` of one launch file, started, watched and stopped (module doc)."""

    def __init__(
        self,
        package: str,
        launch_file: str,
        arguments: Mapping[str, str],
        env: Mapping[str, str] | None = None,
        sink: Callable[[str], None] | None = None,
        stop_timeout_s: float = 25.0,
        extra_flags: Sequence[str] = (),
        sched_fifo: int = 0,
    ) -> None:
        """``env`` adds variables to the inherited environment; ``sink`` gets each output line
        without its newline, from a reader thread; ``sched_fifo`` (1-99; 0: inherited, as usual)
        the SCHED_FIFO priority of the launched graph (module doc)."""
        if stop_timeout_s <= 0:
            raise ValueError(f"LaunchProcess.stop_timeout_s must be > 0 s, got {stop_timeout_s}")
        try:
            self.sched_fifo = check_priority(sched_fifo)
        except ValueError as e:
            raise ValueError(f"LaunchProcess.sched_fifo: {e}") from e
        self.command = [
            ros2_executable(),
            "launch",
            "--noninteractive",  # SIGINT to launch reaches every node once (module doc)
            *extra_flags,
            package,
            launch_file,
            *(f"{k}:={v}" for k, v in arguments.items()),
        ]
        self._env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self._sink = sink or (lambda line: None)
        self.stop_timeout_s = float(stop_timeout_s)
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._codes: dict[str, int | None] = {}
        self._pids: dict[str, int] = {}
        #: ``(node label, exit code)`` of the first node that exited, if any.
        self.first_exit: tuple[str, int] | None = None

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("LaunchProcess.start() called twice")
        try:
            probe_fifo(self.sched_fifo)  # the kernel's reason, said before anything starts
        except RealtimeError as e:
            raise RuntimeError(
                f"could not start the graph at SCHED_FIFO priority {self.sched_fifo}: {e}"
            ) from e
        log.info("starting: %s", " ".join(self.command))
        try:
            self._proc = popen_lines(self.command, self._env, partial(_child_setup, self.sched_fifo))
        except subprocess.SubprocessError as e:  # the child's setup before exec failed
            raise RuntimeError(f"could not start ros2 launch: its setup in the child failed ({e})") from e
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True)
        self._reader.start()

    @property
    def started(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("LaunchProcess not started")
        return self._proc.pid

    def _read(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            self._note(line)
            self._sink(line)
        stream.close()

    def _note(self, line: str) -> None:
        with self._lock:
            if m := _STARTED.match(line):
                self._codes.setdefault(m["name"], None)
                self._pids[m["name"]] = int(m["pid"])
                return
            code = None
            if m := _CLEAN.match(line):
                code = 0
            elif m := _DIED.match(line):
                code = exit_code(int(m["code"]))
            if m is not None and code is not None:
                self._codes[m["name"]] = code
                if self.first_exit is None:
                    self.first_exit = (m["name"], code)

    @property
    def exit_codes(self) -> dict[str, int | None]:
        """Process name -> shell-style exit code, None while it runs (as launch reported)."""
        with self._lock:
            return dict(self._codes)

    @property
    def pids(self) -> dict[str, int]:
        """Process name -> pid, as launch reported them."""
        with self._lock:
            return dict(self._pids)

    def poll(self) -> int | None:
        """``ros2 launch``'s exit code, None while it runs."""
        return None if self._proc is None else self._proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for ``ros2 launch`` to end; its exit code, or None after ``timeout`` s."""
        if self._proc is None:
            raise RuntimeError("LaunchProcess not started")
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout=2.0)  # the last lines reach the sink before we return
        return code

    def stop(self) -> int:
        """SIGINT to ``ros2 launch``, wait up to ``stop_timeout_s``, then SIGKILL its process
        group; ``ros2 launch``'s exit code (-9 if it had to be killed)."""
        if self._proc is None:
            raise RuntimeError("LaunchProcess not started")
        if self._proc.poll() is None:
            t0 = time.monotonic()
            try:
                self._proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
            if self.wait(self.stop_timeout_s) is None:
                log.error(
                    "ros2 launch still runs %.0f s after SIGINT: killing its group", self.stop_timeout_s
                )
                self._signal_group(signal.SIGKILL)
                self._proc.wait()
            else:
                log.info("ros2 launch stopped %.1f s after SIGINT", time.monotonic() - t0)
        self._signal_group(signal.SIGKILL)  # stragglers of its group, if any (none expected)
        self.wait(5.0)
        return self._proc.returncode

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self._proc.pid, sig)  # type: ignore[union-attr]
        except ProcessLookupError:
            pass

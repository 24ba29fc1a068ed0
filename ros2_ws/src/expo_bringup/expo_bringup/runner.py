"""Start a :class:`~expo_bringup.graph.Graph` as plain processes, without ``launch``.

Not a way to start the stack any more: ``ros2 launch`` is (``make setup`` builds it in pip mode;
``make sim`` and users run ``sim.launch.py``/``franka.launch.py``). This stays only as the
harness of three integration tests (sim/tests/test_sim_graph.py, test_multi_actor.py,
test_franka_emulation.py); retire it once they start their graphs through
:func:`expo_bringup.launch_graph.launch_actions` (test_sim_launch.py, test_franka_launch.py show
how).

Process management only, no node logic. Each node runs as ``python -m <module> <ros-args>`` in
its own process group (so a terminal Ctrl-C reaches the runner once, and the runner forwards it
once per node, grandchildren included). Every output line (stdout and stderr merged) is
prefixed with ``[node name]`` by a reader thread and handed to ``sink``.

Lifecycle of the graph, as ``ros2 launch`` with every node required:

- any node exiting brings the others down (SIGINT, then SIGKILL after ``stop_timeout_s``); the
  runner's exit code is that node's code (128 + signal if it died of one), so a node failing
  with code 3 makes the runner return 3 and name the node;
- :meth:`Runner.stop` (or SIGINT/SIGTERM during :meth:`Runner.run`) forwards the signal to
  every node and returns 0 if they all exited cleanly (0, or died of that signal), 1 otherwise.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from expo_bringup.graph import Graph, NodeSpec, to_ros_args

log = logging.getLogger(__name__)
_POLL_S = 0.05


def _stdout_sink(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class LineBuffer:
    """A thread-safe ``sink`` that keeps the prefixed lines in memory (tests, embedding)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def text(self, last: int | None = None) -> str:
        """The lines joined, or only the ``last`` ones."""
        with self._lock:
            return "\n".join(self.lines if last is None else self.lines[-last:])


def node_label(node: NodeSpec) -> str:
    """How the runner names a node (log prefix, exit codes): its name, or ``/ns/name`` when it
    has a namespace, so that same-named nodes of several namespaces stay apart."""
    return f"{node.namespace}/{node.name}" if node.namespace else node.name


def node_command(node: NodeSpec, python: str = sys.executable) -> list[str]:
    """``[python, -m, module, --ros-args ...]`` for one node."""
    return [python, "-m", node.module, *to_ros_args(node)]


def _code(returncode: int) -> int:
    """Popen return code -> shell-style exit code (killed by signal N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def new_session_default_signals() -> None:
    """In a child before exec: its own session (process group), SIGINT and SIGTERM at their
    defaults (a shell's background job inherits SIGINT ignored; the child would ignore our stop)."""
    os.setsid()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)


def popen_lines(
    cmd: Sequence[str], env: Mapping[str, str], setup: Callable[[], None]
) -> subprocess.Popen[str]:
    """Start ``cmd`` with ``setup`` run in the child before exec; its stdout and stderr merged
    into one pipe of text lines, stdin closed (how Runner and LaunchProcess start children)."""
    return subprocess.Popen(
        list(cmd),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        preexec_fn=setup,  # noqa: PLW1509  # callers start no thread of theirs before it runs
    )


class Runner:
    """Runs every node of a graph as a child process and supervises them."""

    def __init__(
        self,
        graph: Graph,
        domain_id: int | None = None,
        stop_timeout_s: float = 10.0,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        sink: Callable[[str], None] = _stdout_sink,
    ) -> None:
        """``domain_id`` sets ROS_DOMAIN_ID (0-232) for every node; ``env`` adds variables to
        the inherited environment (before each node's own ``env``); ``sink`` gets each prefixed
        output line, without the newline, from the reader threads (calls are serialized)."""
        if domain_id is not None and not 0 <= domain_id <= 232:
            raise ValueError(f"Runner.domain_id must be in [0, 232], got {domain_id}")
        if stop_timeout_s <= 0:
            raise ValueError(f"Runner.stop_timeout_s must be > 0 s, got {stop_timeout_s}")
        self.graph = graph
        self.domain_id = domain_id
        self.stop_timeout_s = float(stop_timeout_s)
        self.python = python
        self._env = dict(env or {})
        self._sink = sink
        self._sink_lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen[str]] = {}
        self._readers: list[threading.Thread] = []
        self._stop_request = threading.Event()
        self._stop_signal = signal.SIGINT
        self._exit_code: int | None = None
        #: ``(node name, exit code)`` of the node whose own exit ended the graph, if any.
        self.first_exit: tuple[str, int] | None = None

    def _node_env(self, node: NodeSpec) -> dict[str, str]:
        env = {**os.environ, **self._env, **node.env, "PYTHONUNBUFFERED": "1"}
        if self.domain_id is not None:
            env["ROS_DOMAIN_ID"] = str(self.domain_id)
        return env

    def _read(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            text = line.rstrip("\n")
            with self._sink_lock:
                self._sink(f"[{name}] {text}")
        stream.close()

    def start(self) -> None:
        """Start every node in graph order; on a failed start, stop those already started."""
        if self._procs:
            raise RuntimeError("Runner.start() called twice")
        for node in self.graph.nodes:
            label = node_label(node)
            cmd = node_command(node, self.python)
            log.info("starting %s: %s", label, " ".join(cmd))
            try:
                # its own session, SIGINT and SIGTERM at their defaults: a shell's background job
                # inherits SIGINT ignored, and the node would then ignore our stop. The output
                # readers start after the last fork, so none of ours runs meanwhile.
                proc = popen_lines(cmd, self._node_env(node), new_session_default_signals)
            except OSError:
                log.exception("could not start node %s", label)
                self._start_readers()
                self._shutdown(signal.SIGINT)
                raise
            self._procs[label] = proc
        self._start_readers()

    def _start_readers(self) -> None:
        for label, proc in self._procs.items():
            reader = threading.Thread(target=self._read, args=(label, proc.stdout), daemon=True)
            reader.start()
            self._readers.append(reader)

    @property
    def exit_codes(self) -> dict[str, int | None]:
        """Node name -> shell-style exit code, None while running."""
        return {n: None if p.poll() is None else _code(p.returncode) for n, p in self._procs.items()}

    def request_stop(self, sig: int = signal.SIGINT) -> None:
        """Ask :meth:`wait` to shut the graph down with ``sig``; safe from a signal handler."""
        self._stop_signal = signal.Signals(sig)
        self._stop_request.set()

    def wait(self, timeout: float | None = None) -> int | None:
        """Supervise until the graph ends; returns the exit code, or None after ``timeout`` s."""
        if self._exit_code is not None:
            return self._exit_code
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._stop_request.is_set():
                return self._finish_requested()
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    return self._finish_node_exit(name, _code(proc.returncode))
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._stop_request.wait(_POLL_S)

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Forward ``sig`` to every node, wait, kill stragglers; returns the exit code."""
        if self._exit_code is None:
            self.request_stop(sig)
        return self.wait()  # type: ignore[return-value]  # no timeout: always an int

    def run(self) -> int:
        """start() + wait() with SIGINT/SIGTERM forwarded; main thread only (installs handlers)."""
        handler = lambda signum, _frame: self.request_stop(signum)  # noqa: E731
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            return self.wait()  # type: ignore[return-value]
        finally:
            self._shutdown(signal.SIGINT)
            for s, h in old.items():
                signal.signal(s, h)

    def _finish_node_exit(self, name: str, code: int) -> int:
        self.first_exit = (name, code)
        if code == 0:
            log.info("node %s exited cleanly; stopping the graph", name)
        else:
            log.error("node %s exited with code %d; stopping the graph", name, code)
        self._shutdown(signal.SIGINT)
        self._exit_code = code
        return code

    def _finish_requested(self) -> int:
        sig = self._stop_signal
        log.info("stopping the graph (%s)", sig.name)
        clean = self._shutdown(sig)
        bad = {n: c for n, c in self.exit_codes.items() if c not in (0, 128 + sig)}
        if not clean or bad:
            log.error("nodes did not stop cleanly: %s", bad)
        self._exit_code = 0 if clean and not bad else 1
        return self._exit_code

    def _shutdown(self, sig: int) -> bool:
        """Signal live nodes, wait up to ``stop_timeout_s``, then SIGKILL; True if none was killed."""
        live = {n: p for n, p in self._procs.items() if p.poll() is None}
        for name, proc in live.items():
            log.debug("sending %s to %s", signal.Signals(sig).name, name)
            self._signal(proc, sig)
        deadline = time.monotonic() + self.stop_timeout_s
        clean = True
        for name, proc in live.items():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error(
                    "node %s ignored %s for %.1f s; killing it",
                    name,
                    signal.Signals(sig).name,
                    self.stop_timeout_s,
                )
                self._signal(proc, signal.SIGKILL)
                proc.wait()
                clean = False
        for reader in self._readers:
            reader.join(timeout=1.0)  # the last lines of every node reach the sink before we return
        return clean

    @staticmethod
    def _signal(proc: subprocess.Popen[str], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # its own process group: grandchildren get it too
        except ProcessLookupError:
            pass

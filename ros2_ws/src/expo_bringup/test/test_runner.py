"""Runner: real child processes built from tiny dummy modules written into tmp_path.

The dummies stand in for ROS nodes (they ignore ``--ros-args``): no ROS needed, each test
takes well under a few seconds.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from expo_bringup.graph import Graph, NodeSpec
from expo_bringup.runner import Runner

DUMMIES = {
    "talker": """
import os, sys, time
print("argv", " ".join(sys.argv[1:]))
print("domain", os.environ.get("ROS_DOMAIN_ID", "-"))
print("ready", flush=True)
try:
    while True:
        time.sleep(0.02)
except KeyboardInterrupt:
    print("bye")
    sys.exit(0)
""",
    "oneshot": 'print("line one")\nprint("line two")\n',
    "die": 'import sys, time\nprint("dying", flush=True)\ntime.sleep(0.3)\nsys.exit(3)\n',
    "stubborn": """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.02)
""",
}


@pytest.fixture
def moddir(tmp_path: Path) -> Path:
    for name, src in DUMMIES.items():
        (tmp_path / f"{name}.py").write_text(src)
    return tmp_path


def node(moddir: Path, name: str, module: str) -> NodeSpec:
    return NodeSpec(name, "pkg", "exe", module, parameters={"task": "lift"}, env={"PYTHONPATH": str(moddir)})


class Lines:
    """Thread-safe sink collecting the runner's prefixed output lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def wait_for(self, pred: Callable[[list[str]], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if pred(list(self.lines)):
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out; lines so far: {self.lines}")


def test_output_lines_are_prefixed_and_args_forwarded(moddir: Path) -> None:
    out = Lines()
    runner = Runner(Graph((node(moddir, "solo", "oneshot"),)), sink=out)
    runner.start()
    assert runner.wait(timeout=15) == 0
    assert out.lines == ["[solo] line one", "[solo] line two"]
    assert runner.first_exit == ("solo", 0)


def test_stop_sends_sigint_and_every_node_exits_cleanly(moddir: Path) -> None:
    out = Lines()
    graph = Graph((node(moddir, "a", "talker"), node(moddir, "b", "talker")))
    runner = Runner(graph, domain_id=42, sink=out)
    runner.start()
    assert runner.wait(timeout=0.01) is None  # still running
    out.wait_for(lambda ls: "[a] ready" in ls and "[b] ready" in ls)
    assert runner.stop() == 0
    assert "[a] bye" in out.lines and "[b] bye" in out.lines
    assert runner.exit_codes == {"a": 0, "b": 0}
    assert "[a] domain 42" in out.lines
    argv = next(line for line in out.lines if line.startswith("[a] argv"))
    assert '--ros-args -r __node:=a -p task:="lift"' in argv


def test_nodes_get_sigint_back_when_the_runner_was_started_with_it_ignored(moddir: Path) -> None:
    """A shell's background job (``cmd &`` in a script, nohup) starts with SIGINT ignored, and
    children inherit that: the runner puts it back to the default in every node."""
    out = Lines()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        runner = Runner(Graph((node(moddir, "a", "talker"),)), sink=out)
        runner.start()
    finally:
        signal.signal(signal.SIGINT, old)
    out.wait_for(lambda ls: "[a] ready" in ls)
    assert runner.stop() == 0 and "[a] bye" in out.lines


def test_node_dying_with_code_3_brings_the_graph_down(moddir: Path) -> None:
    out = Lines()
    graph = Graph((node(moddir, "talker", "talker"), node(moddir, "crasher", "die")))
    runner = Runner(graph, sink=out)
    runner.start()
    assert runner.wait(timeout=15) == 3
    assert runner.first_exit == ("crasher", 3)
    assert "[talker] bye" in out.lines and "[crasher] dying" in out.lines
    assert runner.exit_codes == {"talker": 0, "crasher": 3}
    assert runner.wait() == 3  # the result is sticky


def test_node_ignoring_sigint_is_killed_after_timeout(moddir: Path) -> None:
    out = Lines()
    runner = Runner(Graph((node(moddir, "mule", "stubborn"),)), stop_timeout_s=0.5, sink=out)
    runner.start()
    out.wait_for(lambda ls: "[mule] ready" in ls)
    t0 = time.monotonic()
    assert runner.stop() == 1
    assert time.monotonic() - t0 < 5.0
    assert runner.exit_codes == {"mule": 128 + signal.SIGKILL}


def test_ctrl_c_on_the_runner_process_shuts_down_cleanly(moddir: Path) -> None:
    driver = moddir / "driver.py"
    driver.write_text(
        "import sys\n"
        "from expo_bringup.graph import Graph, NodeSpec\n"
        "from expo_bringup.runner import Runner\n"
        "env = {'PYTHONPATH': sys.argv[1]}\n"
        "nodes = tuple(NodeSpec(n, 'p', 'e', 'talker', env=env) for n in ('a', 'b'))\n"
        "sys.exit(Runner(Graph(nodes), stop_timeout_s=5.0).run())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(moddir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Lines()
    reader = threading.Thread(target=lambda: [out(line.rstrip("\n")) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        out.wait_for(lambda ls: "[a] ready" in ls and "[b] ready" in ls)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    assert "[a] bye" in out.lines and "[b] bye" in out.lines


def test_failed_start_stops_nodes_already_started(moddir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_popen = subprocess.Popen
    started: list[subprocess.Popen] = []

    def popen(cmd: list[str], **kw: object) -> subprocess.Popen:
        if "broken" in cmd:
            raise FileNotFoundError("no such interpreter")
        started.append(real_popen(cmd, **kw))
        return started[-1]

    monkeypatch.setattr("expo_bringup.runner.subprocess.Popen", popen)
    graph = Graph((node(moddir, "a", "talker"), node(moddir, "b", "broken")))
    runner = Runner(graph, stop_timeout_s=5.0, sink=Lines())
    with pytest.raises(FileNotFoundError):
        runner.start()
    assert len(started) == 1 and started[0].poll() is not None  # node a was stopped, not leaked
    with pytest.raises(ValueError, match="domain_id"):
        Runner(graph, domain_id=300)


def test_line_buffer_keeps_lines_from_threads_in_order_per_thread() -> None:
    import threading

    from expo_bringup.runner import LineBuffer

    buf = LineBuffer()
    threads = [threading.Thread(target=lambda k=k: [buf(f"{k}:{i}") for i in range(100)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(buf.lines) == 400
    assert [x for x in buf.lines if x.startswith("2:")] == [f"2:{i}" for i in range(100)]
    assert buf.text(last=2).count("\n") == 1


def test_same_named_nodes_in_two_namespaces_are_both_supervised_and_stopped(moddir: Path) -> None:
    out = Lines()
    a = node(moddir, "talker", "talker")
    graph = Graph((dataclasses.replace(a, namespace="r1"), dataclasses.replace(a, namespace="r2")))
    runner = Runner(graph, sink=out)
    runner.start()
    out.wait_for(lambda ls: "[/r1/talker] ready" in ls and "[/r2/talker] ready" in ls)
    assert runner.stop() == 0
    assert runner.exit_codes == {"/r1/talker": 0, "/r2/talker": 0}  # neither left running
    assert "[/r1/talker] bye" in out.lines and "[/r2/talker] bye" in out.lines

"""A :class:`~expo_bringup.graph.Graph` as ``launch`` actions: what ``sim.launch.py`` and
``franka.launch.py`` hand to ``ros2 launch``, and what the launch tests start.

Each node becomes one ``launch_ros`` ``Node``:

- the process is named after the node (``policy_node-2`` in launch output, not ``python3-1``);
- its parameter files, then the graph's values, as ``--params-file`` / ``-p`` command-line
  arguments in that order (rcl applies them in order: the graph's values win; launch_ros's
  ``parameters`` would write a ``/tmp/launch_params_*`` file per dict and leave it behind);
- every node is required: when one exits, the launch shuts down; when one exits with a non-zero
  code (a crash, a failed configure, or a node that did not stop cleanly), the launch also ends
  with a non-zero code (``ros2 launch`` exits 1 and logs which node and code);
- on shutdown a node gets SIGINT, SIGTERM after :data:`SIGTERM_TIMEOUT_S`, SIGKILL
  :data:`SIGKILL_TIMEOUT_S` later: at most 18 s in all (a node still loading torch on a loaded
  2-core machine reacts only after its configure; the learner saves a checkpoint on the way out).

The mapping (:func:`node_kwargs`, :func:`graph_with_params_file`) is pure code, unit-tested
without ``launch``; only the ``*_action(s)`` functions import ``launch`` / ``launch_ros``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from typing import Any

from expo_bringup.graph import Graph, NodeSpec, ParamValue, default_config_dir, format_param

SIGTERM_TIMEOUT_S = 15.0
SIGKILL_TIMEOUT_S = 3.0
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class NodeFailed(RuntimeError):
    """A required node exited with a non-zero code; raised inside launch, it ends ``ros2
    launch`` with exit code 1 (launch turns exceptions into a shutdown and return code 1)."""


def parse_bool(name: str, text: str) -> bool:
    """A launch argument's text as a bool; ValueError naming the argument otherwise."""
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"launch argument '{name}' must be true or false, got '{text}'")


def node_label(node: NodeSpec) -> str:
    """The node's process name in launch output: its name, or ``ns/name`` in a namespace."""
    return f"{node.namespace.lstrip('/')}/{node.name}" if node.namespace else node.name


def node_kwargs(
    node: NodeSpec, ament_packages: Container[str], python: str = sys.executable
) -> dict[str, Any]:
    """``launch_ros.actions.Node`` keyword arguments for one node of the graph.

    A node whose package is in the ament index runs as ``package``/``executable`` (e.g.
    ``expo_policy``/``policy_node``); otherwise as ``python -m module`` (``expo_sim`` is a pip
    package, not an ament one). ``ros_arguments``: parameter files, then the graph's values
    (later ones win in rcl).
    """
    kw: dict[str, Any] = {
        "name": node.name,
        "exec_name": node_label(node),
        "output": "screen",
        "sigterm_timeout": str(SIGTERM_TIMEOUT_S),
        "sigkill_timeout": str(SIGKILL_TIMEOUT_S),
    }
    if node.package in ament_packages:
        kw.update(package=node.package, executable=node.executable)
    else:
        kw.update(executable=python, arguments=["-m", node.module])
    if node.namespace:
        kw["namespace"] = node.namespace
    ros_args = [a for f in node.params_files for a in ("--params-file", f)]
    ros_args += [a for k, v in node.parameters.items() for a in ("-p", f"{k}:={format_param(v)}")]
    if ros_args:
        kw["ros_arguments"] = ros_args
    if node.remappings:
        kw["remappings"] = [tuple(r) for r in node.remappings]
    # Unbuffered output: log lines appear as they happen.
    kw["additional_env"] = {**node.env, "PYTHONUNBUFFERED": "1"}
    return kw


def _flatten(prefix: str, value: Any, out: dict[str, ParamValue]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def read_params_file(path: str | Path) -> dict[str, dict[str, ParamValue]]:
    """A ROS 2 parameters YAML (``<node>: ros__parameters: {...}``, nested keys joined with
    dots) as ``{node key: {parameter: value}}``, in file order. Node keys as written:
    ``name``, ``/ns/name``, ``/**/name`` or ``/**`` (every node)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"launch argument 'params_file': no such file '{p}'")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"params_file '{p}' must map node names to 'ros__parameters:'")
    out: dict[str, dict[str, ParamValue]] = {}
    for key, body in data.items():
        if not isinstance(body, dict) or set(body) != {"ros__parameters"}:
            raise ValueError(f"params_file '{p}': '{key}' must hold exactly one 'ros__parameters:' mapping")
        flat: dict[str, ParamValue] = {}
        _flatten("", body["ros__parameters"] or {}, flat)
        out[str(key)] = flat
    return out


def _matches(key: str, node: NodeSpec) -> bool:
    return key in ("/**", node.name, f"/**/{node.name}", f"{node.namespace}/{node.name}")


def graph_with_params_file(graph: Graph, path: str | Path) -> Graph:
    """The graph with a params file's values applied after everything else (file order; a
    value for a node that is not in the graph raises ValueError naming it)."""
    per_key = read_params_file(path)
    nodes = list(graph.nodes)
    for key, params in per_key.items():
        hit = [i for i, n in enumerate(nodes) if _matches(key, n)]
        if not hit:
            names = [node_label(n) for n in nodes]
            raise ValueError(f"params_file '{path}': '{key}' names no node of the graph {names}")
        for i in hit:
            nodes[i] = nodes[i].adapted(params)
    return Graph(tuple(nodes))


def _on_node_exit(label: str) -> Callable[[Any, Any], Any]:
    def on_exit(event: Any, context: Any) -> Any:
        from launch.actions import Shutdown

        if event.returncode != 0:
            raise NodeFailed(f"node {label} exited with code {event.returncode}")
        return Shutdown(reason=f"{label} exited")

    return on_exit


def launch_actions(graph: Graph) -> list[Any]:
    """One required ``launch_ros`` Node per graph node (module doc; needs launch_ros)."""
    from ament_index_python.packages import get_packages_with_prefixes
    from launch_ros.actions import Node

    installed = set(get_packages_with_prefixes())
    return [Node(**node_kwargs(n, installed), on_exit=_on_node_exit(node_label(n))) for n in graph.nodes]


def rviz_config() -> str:
    """The installed RViz layout (``expo_bringup/config/expo_sim.rviz``)."""
    return str(default_config_dir() / "expo_sim.rviz")


def rviz_action(namespace: str) -> Any:
    """RViz in the graph's namespace; not required: closing its window leaves the stack running."""
    from launch_ros.actions import Node

    ns = namespace or None
    return Node(package="rviz2", executable="rviz2", namespace=ns, arguments=["-d", rviz_config()])


#: The module that prints the default policy (``expo_sim.session.policy``: cached demos and
#: pretrained base, what ``make sim`` uses) as one JSON line; named, not imported (the stack
#: does not import the simulator).
DEFAULT_POLICY_MODULE = "expo_sim.session.policy"


def parse_default_policy(stdout: str) -> tuple[str, str]:
    """(checkpoint, dataset) from the default-policy process's output: its last JSON line."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            data = json.loads(line)
            return str(data["checkpoint"]), str(data.get("dataset") or "")
    raise ValueError("the default-policy step printed no result line")


def default_policy_actions(
    task: str, then: Callable[[str, str], list[Any]], obs: str = "state", algo: str = "expo"
) -> list[Any]:
    """Launch actions that build or reuse the default policy of ``task`` (the one ``make sim``
    uses; ``obs="pixels"``: ``make sim OBS=pixels``' pixel base; ``algo``: the EXPO variant it
    starts as, ``make sim SIM_ARGS="--algo ..."``) in a child process, then start
    ``then(checkpoint, dataset)``. If that process fails, no node is started and the launch ends
    with code 1 and a line saying what to pass.

    A process rather than work inside the launch file: the first run generates demonstrations
    and pretrains (minutes), and Ctrl-C must reach it as any other process."""
    from launch.actions import ExecuteProcess, RegisterEventHandler
    from launch.event_handlers import OnProcessExit, OnProcessIO

    out: list[str] = []
    prep = ExecuteProcess(
        cmd=[
            sys.executable,
            "-m",
            DEFAULT_POLICY_MODULE,
            "--task",
            task,
            *(["--obs", obs] if obs != "state" else []),
            *(["--algo", algo] if algo != "expo" else []),
        ],
        name="default_policy",
        output="screen",
        additional_env={"PYTHONUNBUFFERED": "1"},
    )

    def on_stdout(event: Any) -> None:
        out.append(event.text.decode(errors="replace"))

    def on_exit(event: Any, context: Any) -> Any:
        if context.is_shutdown:
            return None
        hint = "pass checkpoint:=<policy .safetensors> (make one with: make sim)"
        if event.returncode != 0:
            raise NodeFailed(f"the default policy could not be built (exit {event.returncode}); {hint}")
        try:
            checkpoint, dataset = parse_default_policy("".join(out))
        except (ValueError, KeyError) as e:
            raise NodeFailed(f"the default policy step gave no checkpoint ({e}); {hint}") from e
        return then(checkpoint, dataset)

    return [
        RegisterEventHandler(OnProcessIO(target_action=prep, on_stdout=on_stdout)),
        RegisterEventHandler(OnProcessExit(target_action=prep, on_exit=on_exit)),
        prep,
    ]

"""The package layering stays true: one direction of imports, no cycles, nothing in the stack uses sim.

Every module's imports are parsed (module level and inside functions, relative ones resolved),
never executed. The allowed direction::

    expo_core <- expo_ros <- expo_policy / expo_learner <- expo_franka <- expo_bringup <- expo_sim

(``expo_interfaces`` are the messages: anything from ``expo_ros`` up may use them; ``expo_core``
never does, and never imports ROS at all). ``expo_policy`` and ``expo_learner`` do not import each
other. Tests under ``ros2_ws/src`` may import across packages (an integration test of the learner
starts a policy node) but never ``expo_sim``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> the project packages its modules may import (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "expo_core": frozenset(),
    "expo_ros": frozenset({"expo_core", "expo_interfaces"}),
    "expo_policy": frozenset({"expo_core", "expo_interfaces", "expo_ros"}),
    "expo_learner": frozenset({"expo_core", "expo_interfaces", "expo_ros"}),
    "expo_franka": frozenset({"expo_core", "expo_interfaces", "expo_ros", "expo_policy"}),
    "expo_bringup": frozenset(
        {"expo_core", "expo_interfaces", "expo_ros", "expo_policy", "expo_learner", "expo_franka"}
    ),
    "expo_sim": frozenset(
        {
            "expo_core",
            "expo_interfaces",
            "expo_ros",
            "expo_policy",
            "expo_learner",
            "expo_franka",
            "expo_bringup",
        }
    ),
}
PROJECT = frozenset({*ALLOWED, "expo_interfaces"})
#: third-party roots expo_core must never import (the algorithm knows nothing of ROS).
ROS_ROOTS = frozenset({"rclpy", "rosidl_runtime_py", "launch", "launch_ros"})


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module (or package), dotted, absolute
    path: Path
    line: int


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for the stack's packages and sim (tests included)."""
    out: dict[str, Path] = {}
    for src in sorted((root / "ros2_ws" / "src").glob("*/")):
        for f in src.rglob("*.py"):
            rel = f.relative_to(src)
            if rel.parts[0] in ("build", "install", "log"):
                continue
            out[_dotted(rel, prefix=() if rel.parts[0] == src.name else (src.name + "_tests",))] = f
    sim = root / "sim"
    for f in sim.rglob("*.py"):
        rel = f.relative_to(sim)
        out[_dotted(rel, prefix=() if rel.parts[0] == "expo_sim" else ("expo_sim_tests",))] = f
    return out


def _dotted(rel: Path, prefix: tuple[str, ...]) -> str:
    parts = [*prefix, *rel.with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    """Every import statement in ``path`` (any depth), resolved to absolute dotted names."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    here = module.split(".") if is_pkg else module.split(".")[:-1]
    out: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [Import(module, a.name, path, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append(Import(module, sub if sub in known else base, path, node.lineno))
    return out


def package_of(name: str) -> str:
    return name.split(".")[0]


def is_test(module: str) -> bool:
    return package_of(module).endswith("_tests")


def violations(root: Path) -> list[str]:
    """Forbidden edges and imports of project modules that do not exist, as readable lines
    (empty when the layering holds)."""
    files = module_files(root)
    known = set(files)
    bad: list[str] = []
    for mod, path in sorted(files.items()):
        for imp in imports_of(mod, path, known):
            src, dst = package_of(mod), package_of(imp.target)
            where = f"{path.relative_to(root)}:{imp.line}: {mod} imports {imp.target}"
            if dst in ALLOWED and imp.target not in known:
                bad.append(f"{where} (no such module: a stale import after a move?)")
            if is_test(mod):
                if src != "expo_sim_tests" and dst == "expo_sim":
                    bad.append(f"{where} (the stack's tests must not use the simulator)")
                continue
            if src == "expo_core" and dst in ROS_ROOTS:
                bad.append(f"{where} (expo_core never imports ROS)")
            if dst in PROJECT and dst != src and dst not in ALLOWED[src]:
                bad.append(f"{where} ({src} may import only {sorted(ALLOWED[src]) or 'itself'})")
    return bad


def cycles(root: Path) -> list[list[str]]:
    """Import cycles among the project's modules (tests excluded), each as a list of modules."""
    files = module_files(root)
    known = set(files)
    graph: dict[str, set[str]] = {m: set() for m in files if not is_test(m)}
    for mod in graph:
        for imp in imports_of(mod, files[mod], known):
            if imp.target in graph and imp.target != mod:
                graph[mod].add(imp.target)
    # Tarjan's strongly connected components; any component of size > 1 is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_stack_imports_one_way_only() -> None:
    assert violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert cycles(ROOT) == []


def test_every_package_is_known() -> None:
    pkgs = {p.name for p in (ROOT / "ros2_ws" / "src").iterdir() if (p / p.name).is_dir()}
    assert pkgs <= set(ALLOWED), f"a new package needs its place in ALLOWED: {sorted(pkgs - set(ALLOWED))}"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return tmp_path


_CLEAN = {
    "ros2_ws/src/expo_core/expo_core/__init__.py": "",
    "ros2_ws/src/expo_core/expo_core/spec.py": "import numpy\n",
    "ros2_ws/src/expo_ros/expo_ros/__init__.py": "",
    "ros2_ws/src/expo_ros/expo_ros/conversions.py": "from expo_core.spec import x\n",
    "ros2_ws/src/expo_policy/expo_policy/__init__.py": "",
    "ros2_ws/src/expo_policy/expo_policy/node.py": "from expo_ros import conversions\n",
    "sim/expo_sim/__init__.py": "",
    "sim/expo_sim/bridge.py": "from expo_policy.node import y\n",
}


def test_checker_accepts_a_clean_tree(tmp_path: Path) -> None:
    root = _tree(tmp_path, _CLEAN)
    assert violations(root) == [] and cycles(root) == []


@pytest.mark.parametrize(
    ("rel", "text", "why"),
    [
        (
            "ros2_ws/src/expo_core/expo_core/bad.py",
            "from expo_ros.conversions import z\n",
            "expo_core may import",
        ),
        ("ros2_ws/src/expo_core/expo_core/bad.py", "def f():\n    import rclpy\n", "never imports ROS"),
        (
            "ros2_ws/src/expo_ros/expo_ros/bad.py",
            "def f():\n    from expo_policy import node\n",
            "expo_ros may",
        ),
        ("ros2_ws/src/expo_policy/expo_policy/bad.py", "import expo_sim.bridge\n", "expo_policy may"),
        (
            "ros2_ws/src/expo_policy/test/test_x.py",
            "from expo_sim import bridge\n",
            "must not use the simulator",
        ),
        (
            "ros2_ws/src/expo_policy/expo_policy/bad.py",
            "def f():\n    from .gone import g\n",
            "no such module",
        ),
    ],
)
def test_checker_catches_a_forbidden_import(tmp_path: Path, rel: str, text: str, why: str) -> None:
    root = _tree(tmp_path, {**_CLEAN, rel: text})
    found = violations(root)
    assert len(found) == 1 and why in found[0], found


def test_checker_catches_a_cycle_through_a_function_level_relative_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            **_CLEAN,
            "ros2_ws/src/expo_policy/expo_policy/a.py": "from .b import f\n",
            "ros2_ws/src/expo_policy/expo_policy/b.py": "def f():\n    from . import a\n",
        },
    )
    assert cycles(root) == [["expo_policy.a", "expo_policy.b"]]

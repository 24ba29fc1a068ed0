"""Fix-up for a packaging fault of the ROS 2 pip wheels (documented in the README).

The wheels' exported CMake files under ``<venv>/share/**/*.cmake`` name the wheel build host's
Python paths (``/opt/python/cp311-cp311/include/python3.11`` and that host's numpy include dir).
CMake's generate step then fails for any package that uses rosidl. We rewrite those paths to
this interpreter's include dir and ``numpy.get_include()``. Idempotent: files already fixed are
left alone. Usage: ``python scripts/fix_ros_cmake_paths.py <venv>``.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# The build host's interpreter root, for any CPython tag (cp310 ... cp313).
_HOST = r"/opt/python/cp3\d+-cp3\d+"
_NUMPY_INC = re.compile(_HOST + r"/lib/python3\.\d+/site-packages/numpy/(?:_?core)/include")
_PY_INC = re.compile(_HOST + r"/include/python3\.\d+")


def fix(venv: Path) -> int:
    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    changed = 0
    for f in sorted((venv / "share").rglob("*.cmake")):
        text = f.read_text()
        new = _PY_INC.sub(py_inc, _NUMPY_INC.sub(np_inc, text))
        if new != text:
            f.write_text(new)
            changed += 1
    return changed


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: fix_ros_cmake_paths.py <venv>")
    venv = Path(sys.argv[1])
    if not (venv / "share").is_dir():
        raise SystemExit(f"{venv}/share not found: is {venv} the venv with the ROS wheels?")
    n = fix(venv)
    print(f"[setup] ROS wheel CMake paths: {f'{n} file(s) rewritten' if n else 'already fixed'}")


if __name__ == "__main__":
    main()

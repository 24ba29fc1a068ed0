"""docs/files.md's reading example, run as written against segments this package writes: two
closed segments and an open one (what a live learner leaves), read with ``rosbags`` alone."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
from expo_learner.segments import SegmentConfig, SegmentWriter

DOC = Path(__file__).resolve().parents[4] / "docs" / "files.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/files.md: one python example expected"
    return blocks[0]


def test_the_documented_example_reads_every_closed_segment(tmp_path: Path) -> None:
    code = _example()
    doc_path = re.search(r'bags = Path\("([^"]+)"\)', code)
    assert doc_path and doc_path.group(1).endswith("/learner/bags"), code
    bags = tmp_path / "learner" / "bags"
    n, obs_dim = 12, 19
    rng = np.random.default_rng(0)

    def rows(k: int, first_step: int) -> dict:
        obs = rng.standard_normal((k, obs_dim)).astype(np.float32)
        return dict(
            obs=obs,
            action=rng.uniform(-1, 1, (k, 7)).astype(np.float32),
            reward=np.arange(first_step, first_step + k, dtype=np.float32),
            next_obs=obs + 1,
            terminated=np.zeros(k, bool),
            truncated=np.zeros(k, bool),
            episode=0,
            step=np.arange(first_step, first_step + k),
            policy_version=3,
            source="/policy_node",
        )

    writer = SegmentWriter(bags, SegmentConfig(max_bytes=2**40, max_age_s=None))
    writer.write_arrays(**rows(n, 0))
    writer.rotate()
    writer.write_arrays(**rows(n, n))
    writer.rotate()
    writer.write_arrays(**rows(5, 2 * n))  # the open segment: no metadata.yaml yet
    writer.flush()
    assert len(list(bags.glob("seg_*"))) == 3

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code.replace(doc_path.group(0), f'bags = Path("{bags}")'), {})  # noqa: S102
    printed = [line.split() for line in out.getvalue().splitlines()]
    # episode, step, reward, terminated, policy_version, intervention: the closed segments' rows
    assert [int(r[1]) for r in printed] == list(range(2 * n))
    assert {(r[0], r[3], r[4], r[5]) for r in printed} == {("0", "False", "3", "False")}
    assert [float(r[2]) for r in printed] == [float(s) for s in range(2 * n)]
    writer.close()

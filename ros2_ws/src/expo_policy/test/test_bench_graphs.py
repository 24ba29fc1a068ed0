"""bench_graphs: rows are timed and the lean-vs-torch parity line reports every draw agreeing."""

import importlib.util

import pytest
from expo_policy.bench_graphs import main

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


@pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed")
def test_bench_graphs_times_rows_and_checks_parity(capsys) -> None:
    assert (
        main(["--rows", "traced,lean", "--decisions", "3", "--parity", "3", "--samples", "2", "--steps", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "traced " in out and "lean " in out and "p99" in out
    assert "same index 3/3" in out


def test_bench_graphs_rejects_unknown_rows() -> None:
    with pytest.raises(SystemExit):
        main(["--rows", "fast"])


@pytest.mark.skipif(
    not HAVE_ORT or importlib.util.find_spec("openvino") is None,
    reason="openvino not installed (an optional bench row: pip install openvino)",
)
def test_bench_graphs_openvino_rows_match_torch(capsys) -> None:
    assert main(["--rows", "ov-lean,ov-lean-bf16", "--decisions", "2", "--samples", "2", "--steps", "2"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if "p99" in line}
    f32 = float(lines["ov-lean"].split("max abs diff from torch ")[1].rstrip(")"))
    bf16 = float(lines["ov-lean-bf16"].split("max abs diff from torch ")[1].rstrip(")"))
    assert f32 < 1e-4  # float32: the reference computation
    assert f32 < bf16 < 0.5  # bfloat16: close, not exact

"""python -m expo_sim.study.figure: the chosen algorithms' curves from the CSV, bad input refused."""

import pytest
from expo_sim.study import figure
from expo_sim.study.results import Point, write_learning_csv


def test_draws_the_chosen_algorithms_in_order_and_refuses_unknown_ones(tmp_path, capsys, monkeypatch):
    csv_path = tmp_path / "learning.csv"
    pts = [
        Point("lift", a, s, n, v, 100)
        for a, v in (("expo", 0.5), ("expo-n5", 0.7), ("bc", 0.3))
        for s in (0, 1)
        for n in (0, 2000)
    ]
    write_learning_csv(csv_path, [*pts, Point("can", "expo", 0, 0, 0.1, 100)], [])
    drawn = {}
    monkeypatch.setattr(
        figure, "plot_task", lambda p, task, out, algos: drawn.update(task=task, algos=algos, n=len(p))
    )
    out = tmp_path / "fig.png"
    assert (
        figure.main(
            ["--task", "lift", "--algos", "expo-n5", "expo", "--csv", str(csv_path), "--out", str(out)]
        )
        == 0
    )
    assert drawn == {"task": "lift", "algos": ["expo-n5", "expo"], "n": len(pts)}  # lift rows only
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "| env steps | expo-n5 | expo |" and "0.70" in table
    with pytest.raises(SystemExit) as e:
        figure.main(["--task", "lift", "--algos", "expo-n10", "--csv", str(csv_path), "--out", str(out)])
    assert e.value.code == 2 and "expo-n10" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        figure.main(
            ["--task", "lift", "--algos", "expo", "--csv", str(tmp_path / "none.csv"), "--out", str(out)]
        )


def test_writes_the_png(tmp_path):
    csv_path = tmp_path / "learning.csv"
    write_learning_csv(
        csv_path, [Point("lift", "expo", s, n, 0.5, 100) for s in (0, 1) for n in (0, 2000)], []
    )
    out = tmp_path / "sub" / "fig.png"
    assert figure.main(["--task", "lift", "--algos", "expo", "--csv", str(csv_path), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000

"""The rejects file keeps each cell's original text (issue 11, item 9)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from cli_helpers import run_cli


def _trained(copy_example, capsys) -> Path:  # noqa: ANN001 - the conftest factory
    project = copy_example("diabetes")
    path = project / "mlrepro.yaml"
    data = yaml.safe_load(path.read_text())
    data["model"]["params"] = {"n_estimators": 10, "max_depth": 4}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_cli("run", "-q", "-p", project).code == 0
    return project


def test_rejected_cells_keep_their_text(copy_example, capsys, tmp_path) -> None:
    project = _trained(copy_example, capsys)
    lines = (project / "data" / "new_visits.csv").read_text().splitlines()
    header = lines[0].split(",")
    age, bp, s1 = header.index("age"), header.index("bp"), header.index("s1")
    rows = [line.split(",") for line in lines[1:]]
    for i, row in enumerate(rows):
        row[age] = str(40 + i)  # integers as written: 40, 41, ...
    rows[1][bp] = "inf"  # makes the row invalid; 'bp' is parsed as float
    rows[2][age] = "inf"  # 'age' now holds inf too, so pandas reads it as float
    rows[3][s1] = "0007"  # leading zeros in a number column
    rows[3][bp] = "-inf"
    src = tmp_path / "in.csv"
    src.write_text("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n")
    rejects, out = tmp_path / "rejects.csv", tmp_path / "out.csv"
    result = run_cli("predict", "-p", project, "--input", src, "--output", out,
        "--on-invalid", "quarantine", "--rejects", rejects,
    )  # fmt: skip
    assert result.code == 0, result.err
    got = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert got["row"].tolist() == ["1", "2", "3"]
    by_row = got.set_index("row")
    assert by_row.loc["1", "age"] == "41"  # not "41.0"
    assert by_row.loc["1", "bp"] == "inf"
    assert by_row.loc["2", "age"] == "inf"
    assert by_row.loc["3", "s1"] == "0007" and by_row.loc["3", "age"] == "43"
    assert "infinite value" in by_row.loc["1", "reason"]
    for row in ("1", "2", "3"):  # every other cell exactly as in the file
        original = rows[int(row)]
        for name in header:
            assert by_row.loc[row, name] == original[header.index(name)], (row, name)
    assert len(pd.read_csv(out)) == len(rows) - 3


def test_rejects_across_chunks(copy_example, capsys, tmp_path) -> None:
    project = _trained(copy_example, capsys)
    frame = pd.read_csv(project / "data" / "new_visits.csv", dtype=str)
    big = pd.concat([frame] * 30, ignore_index=True)
    big["visit_id"] = [str(10_000 + i) for i in range(len(big))]
    bad = [3, 250, 599]
    for i in bad:
        big.loc[i, "bmi"] = "huge"
    src = tmp_path / "in.csv"
    big.to_csv(src, index=False)
    rejects = tmp_path / "rejects.csv"
    result = run_cli("predict", "-p", project, "--input", src, "--output", tmp_path / "o.parquet",
        "--on-invalid", "quarantine", "--rejects", rejects, "--chunk-rows", "64",
    )  # fmt: skip
    assert result.code == 0, result.err
    got = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert got["row"].astype(int).tolist() == bad
    assert got["visit_id"].tolist() == [str(10_000 + i) for i in bad]
    assert set(got["bmi"]) == {"huge"}

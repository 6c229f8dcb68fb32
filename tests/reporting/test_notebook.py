"""``mlrepro.open_project``: the project API, directly and from a notebook run by nbclient."""

from __future__ import annotations

import pytest

import mlrepro
from mlrepro.errors import ArtifactError, ManifestError, MlreproError, UsageError


def test_the_whole_loop_in_python(copy_example, tmp_path):
    project = mlrepro.open_project(copy_example("breast_cancer"))
    first = project.run()
    assert first.ran == ["extract", "features", "select", "train", "predict"]
    assert "<b>run breast-cancer-diagnosis</b>" in first._repr_html_()
    assert str(first).startswith("run breast-cancer-diagnosis: 5 stage(s) ran")
    assert project.run().ran == []  # unchanged: skipped
    status = project.status()
    assert status.up_to_date and "up to date" in str(status)
    result = project.verify(offline=True)
    assert result.reproduced and result.exit_code == 0 and result.cause is None
    assert [s.verdict for s in result.stages][1:] == ["identical"] * 4
    assert "reproduced" in result._repr_html_()
    assert result.to_dict()["reproduced"] is True
    bundle = project.bundle(tmp_path / "m.mlrepro")
    assert bundle.fingerprint.startswith("b3:") and "m.mlrepro" in bundle._repr_html_()
    model = bundle.load()
    assert model.fingerprint == bundle.fingerprint
    assert '<section id="plots">' in result.html()


def test_a_difference_is_a_result_with_the_cli_exit_code(copy_example):
    root = copy_example("diabetes")
    project = mlrepro.open_project(root)
    project.run()
    manifest = root / "mlrepro.yaml"
    manifest.write_text(manifest.read_text().replace("max_depth: 8", "max_depth: 5"))
    result = project.verify(offline=True, stage="train")
    assert not result.reproduced and result.exit_code == 1 and result.cause == "train"
    assert "parameter model.params.max_depth: 8 -> 5" in str(result)
    assert "Prediction differences (train)" in result.html()


def test_errors_are_the_cli_errors(copy_example, tmp_path):
    with pytest.raises(ManifestError) as exc:
        mlrepro.open_project(tmp_path / "nowhere")
    assert exc.value.exit_code == 2 and exc.value.hint
    project = mlrepro.open_project(copy_example("diabetes"))
    with pytest.raises(ArtifactError) as exc:
        project.verify()  # never run: no lock
    assert exc.value.exit_code == 4 and "nothing to verify" in exc.value.message
    with pytest.raises(UsageError) as exc:
        project.run(["trian"])
    assert exc.value.exit_code == 2 and "unknown stage" in exc.value.message
    with pytest.raises(MlreproError) as exc:
        project.bundle(tmp_path / "m.mlrepro")  # not trained
    assert exc.value.exit_code == 2 and "mlrepro run" in exc.value.hint


@pytest.mark.slow
def test_the_example_notebook_runs_headlessly(copy_example):
    """examples/diabetes/tour.ipynb, executed by nbclient in a copy of the example."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    project = copy_example("diabetes")
    nb = nbformat.read(project / "tour.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(project)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(html) == 4
    assert "<b>run diabetes-progression</b>" in html[0] and "ran" in html[0]
    assert "up to date" in html[1]
    assert "reproduced" in html[2] and "identical" in html[2]
    assert "bundle fingerprint" in html[3]
    texts = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "20 predictions" in texts and "exit 2 -" in texts
    assert (project / "diabetes.mlrepro").is_file()

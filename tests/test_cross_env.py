"""Research to production: train here, verify in another environment, recreate this one.

The README's "Research to production" walk-through is parsed and run as written: its
research half with this interpreter, its production half in a second virtual environment
with another scikit-learn minor version and another numpy from the package index (the
other dependencies are shared with this one through a ``.pth`` file, which keeps the test
cheap), and the environment it recreates with ``mlrepro env recreate``.

Needs the package index: skipped locally when it is unreachable, a failure under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import site
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, in_ci

README = REPO_ROOT / "README.md"
BEGIN, END = "<!-- research-to-production:begin -->", "<!-- research-to-production:end -->"


def walkthrough() -> list[tuple[str, str]]:
    """(side, command) for each command of the README's walk-through."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    side, out = "research", []
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("# ---") and "production" in line:
            side = "production"
        if not line or line.startswith(("#", "```")):
            continue
        out.append((side, line.split("  #")[0].strip()))
    return out


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def require_index() -> None:
    try:
        with urllib.request.urlopen(f"{index_url()}/scikit-learn/", timeout=15) as resp:
            resp.read(64)
    except Exception as exc:
        if in_ci():
            pytest.fail(f"CI=true but the package index {index_url()} is unreachable: {exc}")
        pytest.skip(f"the package index {index_url()} is unreachable: {exc}")


def other_versions() -> list[str]:
    """A scikit-learn minor version and a numpy other than this environment's."""
    import numpy
    import sklearn

    sk = tuple(int(x) for x in sklearn.__version__.split(".")[:2])
    np_major, np_minor = (int(x) for x in numpy.__version__.split(".")[:2])
    sklearn_pin = "scikit-learn==1.7.2" if sk == (1, 8) else "scikit-learn==1.8.0"
    numpy_pin = (
        f"numpy>=2.0,<{np_major}.{np_minor}" if (np_major, np_minor) > (2, 0) else "numpy>=2.1,<3"
    )
    return [sklearn_pin, numpy_pin]


def sh(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def second_environment(where: Path) -> Path:
    """A venv with other scikit-learn and numpy versions; the rest shared with this one."""
    base = getattr(sys, "_base_executable", sys.executable)
    venv = where / "prod-python"
    proc = sh([base, "-m", "venv", str(venv)], where)
    assert proc.returncode == 0, proc.stderr
    py = venv / "bin" / "python"
    proc = sh(
        [str(py), "-m", "pip", "install", "-q", "--only-binary", ":all:", *other_versions()],
        where,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    purelib = sh([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], where)
    lines = "; ".join(f"site.addsitedir({d!r})" for d in dirs if os.path.isdir(d))
    Path(purelib.stdout.strip(), "zz_shared_with_research.pth").write_text(
        f"import site; {lines}\n"
    )
    proc = sh([str(py), "-m", "pip", "install", "-q", "--no-deps", str(REPO_ROOT)], where)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


def versions(py: Path, cwd: Path) -> dict[str, str]:
    code = (
        "import json, sklearn, numpy; print(json.dumps([sklearn.__version__, numpy.__version__]))"
    )
    sk, np_ = json.loads(sh([str(py), "-c", code], cwd).stdout)
    return {"scikit-learn": sk, "numpy": np_}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_research_to_production(copy_example, tmp_path):
    steps = walkthrough()
    assert [c for _, c in steps if "serve" in c], "the walk-through ends by serving"
    require_index()
    import numpy
    import sklearn

    project = copy_example("diabetes")
    prod = second_environment(tmp_path)
    theirs = versions(prod / "bin" / "python", project)
    assert theirs["scikit-learn"].split(".")[:2] != sklearn.__version__.split(".")[:2]
    assert theirs["numpy"] != numpy.__version__

    research = [sys.executable, "-m", "mlrepro.cli.main"]
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    for side, command in steps:
        args = shlex.split(command)
        if args[0] == "mlrepro":
            exe = research if side == "research" else [str(prod / "bin" / "mlrepro")]
        else:  # e.g. prod-env/bin/mlrepro: an environment the walk-through created
            exe = [str(project / args[0])]
        if "serve" in args:
            continue  # blocks; --strict-env refusals are tested in test_env.py
        wants_json = args[1] == "verify" or args[1:3] in (["env", "diff"], ["env", "check"])
        if wants_json and "--json" not in args:
            args.append("--json")
        proc = sh([*exe, *args[1:]], project, timeout=900)
        results[f"{side}: {command}"] = proc
        expected = 1 if args[1:3] == ["env", "check"] else 0
        assert proc.returncode == expected, (
            f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )

    def result(pattern: str) -> subprocess.CompletedProcess[str]:
        return next(v for k, v in results.items() if re.search(pattern, k))

    # the export pins this environment's versions
    req = (project / "requirements-model.txt").read_text()
    assert f"scikit-learn=={sklearn.__version__}" in req and f"numpy=={numpy.__version__}" in req

    # production: diff names the versions, the model's package first
    diff = json.loads(result(r"production: mlrepro env diff").stdout)
    first = diff["differences"][0]
    assert first["name"] == "scikit-learn" and first["tier"] == "pipeline"
    assert first["recorded"] == sklearn.__version__ and first["current"] == theirs["scikit-learn"]
    numpy_diff = next(e for e in diff["differences"] if e["name"] == "numpy")
    assert numpy_diff["tier"] == "dependency" and numpy_diff["current"] == theirs["numpy"]
    check = json.loads(result(r"production: mlrepro env check").stdout)
    assert {"scikit-learn", "numpy"} <= {e["name"] for e in check["matters"]}

    # production: every stage gets a verdict; not different unless the version change is named
    proc = result(r"production: mlrepro verify")
    assert "InconsistentVersionWarning" not in proc.stderr, "library warnings go to the report"
    report = json.loads(proc.stdout)
    for stage in report["stages"]:
        assert stage["verdict"] in ("identical", "equivalent", "different"), stage
        if stage["verdict"] == "different":
            assert any("scikit-learn" in c for c in stage["environment_causes"]), stage
    train = next(s for s in report["stages"] if s["stage"] == "train")
    assert any(
        c.startswith(f"scikit-learn: {sklearn.__version__} -> ")
        for c in train["environment_causes"]
    )
    # verify loads none of the project's pickles (no --trust-artifacts), so scikit-learn has
    # no old pickle to warn about; any library warning is summarised, one line per kind
    assert len(report["warnings"]) <= 3

    # the recreated environment is the recorded one: verify is identical there
    report = json.loads(result(r"prod-env/bin/mlrepro verify").stdout)
    assert {s["verdict"] for s in report["stages"]} == {"identical"}, report
    assert versions(project / "prod-env" / "bin" / "python", project) == {
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
    }

"""The project as a Python API, for notebooks: ``mlrepro.open_project(path)``.

    p = mlrepro.open_project("examples/diabetes")
    p.run()        # RunResult     (like 'mlrepro run')
    p.status()     # StatusResult  (like 'mlrepro status')
    p.verify()     # VerifyResult  (like 'mlrepro verify'; .exit_code, .reproduced, .html())
    p.bundle("model.mlrepro")   # BundleResult (like 'mlrepro bundle -o')

Each call does what the CLI command does, raises the same ``MlreproError`` subclasses
(``exit_code`` on the class: 2 usage/manifest, 3 data, 4 artifact, 5 source), and returns a
result that renders as HTML in Jupyter and as text elsewhere. A verification that finds a
difference is a result (``exit_code`` 1, as the CLI exits), not an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlrepro.notebook.results import BundleResult, RunResult, StatusResult, VerifyResult

__all__ = ["BundleResult", "Project", "RunResult", "StatusResult", "VerifyResult", "open_project"]


class Project:
    """One mlrepro project (a folder holding ``mlrepro.yaml``). Create it with ``open_project``."""

    def __init__(self, manifest: Any) -> None:
        self._manifest = manifest

    @property
    def manifest(self) -> Any:
        return self._manifest

    @property
    def name(self) -> str:
        return self._manifest.name

    @property
    def root(self) -> Path:
        return self._manifest.root

    def reload(self) -> Project:
        """Read ``mlrepro.yaml`` again (after editing it in the notebook)."""
        from mlrepro.core import manifest as manifest_mod

        self._manifest = manifest_mod.load(self._manifest.path)
        return self

    def __repr__(self) -> str:
        return f"<mlrepro project {self.name!r} at {str(self.root)!r}>"

    def run(
        self,
        stages: list[str] | None = None,
        *,
        force: bool = False,
        wait: float = 0.0,
        on_event: Callable[[str, str, Any], None] | None = None,
    ) -> RunResult:
        """Run the pipeline (or the named stages); unchanged stages are skipped."""
        from mlrepro.errors import UsageError
        from mlrepro.pipeline import plan
        from mlrepro.pipeline.runner import Runner
        from mlrepro.project.locking import project_lock

        self.reload()
        m = self._manifest
        if stages is not None:
            known = plan.stages_for(m)
            unknown = [s for s in stages if s not in known]
            if unknown:
                raise UsageError(
                    f"unknown stage(s) {unknown}", hint=f"use stages from: {', '.join(known)}"
                )
        with project_lock(m.root, wait):
            runner = Runner(m, report=on_event) if on_event is not None else Runner(m)
            results = runner.run(stages, force=force)
            if stages is None:
                runner.finish()
        return RunResult(m.name, results)

    def status(self) -> StatusResult:
        """Each stage as up to date, stale (with the reason) or missing."""
        from mlrepro.pipeline.runner import Runner

        self.reload()
        return StatusResult(self.name, Runner(self._manifest).status())

    def verify(
        self,
        *,
        offline: bool = False,
        stage: str | None = None,
        rtol: float = 1e-9,
        atol: float = 1e-12,
    ) -> VerifyResult:
        """Re-execute in a scratch folder and judge every stage against ``mlrepro.lock``."""
        from mlrepro.verify.compare import Tolerance
        from mlrepro.verify.session import verify

        self.reload()
        report = verify(
            self._manifest, tol=Tolerance(rtol=rtol, atol=atol), offline=offline, stage=stage
        )
        return VerifyResult(report, self._manifest)

    def bundle(self, output: str | Path | None = None, *, wait: float = 0.0) -> BundleResult:
        """Pack the trained model into a ``.mlrepro`` bundle (refused when stale)."""
        from mlrepro.delivery import bundle as fmt
        from mlrepro.project.locking import project_lock

        self.reload()
        m = self._manifest
        target = Path(output) if output is not None else m.root / f"{m.name}{fmt.SUFFIX}"
        with project_lock(m.root, wait):
            info = fmt.build(m, target)
        return BundleResult(
            path=str(info["bundle"]),
            fingerprint=info["fingerprint"],
            model_fingerprint=info["model_fingerprint"],
            project=info["project"],
            size=int(info["size"]),
        )

    def report(self, output: str | Path | None = None, *, verify: bool = True) -> str:
        """The HTML report (verified unless ``verify=False``); written to ``output`` if given."""
        from mlrepro import report as reports

        result = self.verify().report if verify else None
        text = reports.build(self._manifest, result, "html")
        if output is not None:
            reports.write(Path(output), text)
        return text


def open_project(path: str | Path = ".") -> Project:
    """Open the project in ``path`` (a folder holding ``mlrepro.yaml``, or the manifest)."""
    from mlrepro.core import manifest as manifest_mod

    return Project(manifest_mod.load(Path(path)))

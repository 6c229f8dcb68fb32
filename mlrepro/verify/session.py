"""``mlrepro verify``: re-execute the pipeline into a scratch folder, judge every stage.

The project's ``.mlrepro/`` and ``mlrepro.lock`` are only read. Each stage runs in a
``Runner`` whose store and lock live in a temporary folder (removed afterwards), then
``verdicts.judge`` compares its record with the recorded one.

Each stage is fed the *recorded* upstream outputs when they are available (the same
content, or the recorded artifact copied into the scratch store), so every verdict speaks
about that stage alone and the first stage that diverged is the cause. Where a recorded
upstream artifact is missing or modified, the stage is fed the re-executed one, and the
report says so.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrepro.core.manifest import Manifest
from mlrepro.environment import record as env
from mlrepro.errors import (
    EXIT_ARTIFACT,
    EXIT_NOT_REPRODUCED,
    EXIT_OK,
    ArtifactError,
    DataError,
    MlreproError,
    PredictionRejected,
    SourceError,
    UsageError,
)
from mlrepro.pipeline import plan
from mlrepro.pipeline.registry import STAGES
from mlrepro.pipeline.runner import Runner, ScratchPredictions
from mlrepro.project import lockfile
from mlrepro.project.store import Store, is_pickle
from mlrepro.verify.audit import seed_audit
from mlrepro.verify.compare import Tolerance
from mlrepro.verify.envcause import explain, library_warnings
from mlrepro.verify.verdicts import (
    FAILED,
    SKIPPED,
    SOURCE_CHANGED,
    TAMPERED,
    Artifacts,
    StageReport,
    judge,
    never_recorded,
)


@dataclass
class Report:
    """Everything ``verify`` found; ``exit_code`` follows the README's table."""

    project: str
    tolerance: Tolerance
    offline: bool = False
    only: str | None = None
    stages: list[StageReport] = field(default_factory=list)
    audit: list[dict[str, str]] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # library warnings, one line per kind
    as_of: str = ""

    @property
    def cause(self) -> str | None:
        return next((s.stage for s in self.stages if s.verdict in FAILED), None)

    @property
    def exit_code(self) -> int:
        verdicts = {s.verdict for s in self.stages}
        if TAMPERED in verdicts:
            return EXIT_ARTIFACT
        if verdicts & set(FAILED):
            return EXIT_NOT_REPRODUCED
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "reproduced": self.exit_code == EXIT_OK,
            "exit_code": self.exit_code,
            "cause": self.cause,
            "offline": self.offline,
            "stage": self.only,
            "as_of": self.as_of,
            "tolerance": {"rtol": self.tolerance.rtol, "atol": self.tolerance.atol},
            "stages": [s.to_dict() for s in self.stages],
            "environment": self.environment,
            "warnings": self.warnings,
            "audit": self.audit,
        }


def verify(
    manifest: Manifest,
    *,
    tol: Tolerance = Tolerance(),
    offline: bool = False,
    stage: str | None = None,
    on_stage: Callable[[str], None] | None = None,
    trust_artifacts: bool = False,
) -> Report:
    """Re-execute the project's stages in a scratch folder and judge each one.

    The project's pickled models are never loaded unless ``trust_artifacts``: stages that
    read an upstream model are fed the re-executed one, and model differences are explained
    from the safe records (fingerprints, the train stage's predictions on the matrix rows).
    """
    recorded = lockfile.read(manifest.root, manifest.name)
    if not recorded["stages"]:
        where = manifest.root / lockfile.LOCK_NAME
        what = "does not exist" if not where.exists() else "records no stages"
        raise ArtifactError(
            f"{where} {what}: nothing to verify",
            hint="run 'mlrepro run' to record the pipeline, or copy the project's "
            f"{lockfile.LOCK_NAME} next to its mlrepro.yaml",
        )
    stages = plan.stages_for(manifest)
    _check_options(manifest, stages, stage, offline, tol)
    report = Report(manifest.name, tol, offline, stage, as_of=manifest.source.as_of)
    report.audit = seed_audit(manifest)
    with (
        tempfile.TemporaryDirectory(prefix="mlrepro-verify-") as scratch,
        library_warnings() as caught,
    ):
        session = _Session(
            manifest,
            recorded,
            Path(scratch),
            tol,
            offline,
            isolated=bool(stage),
            trust=trust_artifacts,
        )
        for name in [stage] if stage else stages:
            if on_stage:
                on_stage(name)
            report.stages.append(session.verify_stage(name))
    report.warnings = caught.summary()
    if not stage:
        gone = [s for s in STAGES if s in recorded["stages"] and s not in stages]
        report.stages += [_skipped(s, "recorded, but no longer in the manifest") for s in gone]
    report.environment = sorted({d for s in report.stages for d in s.environment})
    return report


def _check_options(
    m: Manifest, stages: list[str], stage: str | None, offline: bool, tol: Tolerance
) -> None:
    for name, value in (("--rtol", tol.rtol), ("--atol", tol.atol)):
        if not value >= 0:  # also refuses NaN
            raise UsageError(f"{name} must be >= 0, got {value}", hint=f"pass {name} 0 or more")
    if stage is not None and stage not in stages:
        hint = f"use one of {', '.join(stages)}"
        if stage == "predict":
            hint = "the manifest has no predict input (predict.input or predict.query)"
        raise UsageError(f"--stage {stage!r} is not a stage of this project", hint=hint)
    if offline and stage == "extract":
        raise UsageError(
            "use just one of --offline or --stage extract",
            hint="--offline skips the source; --stage extract re-queries it",
        )
    if offline and stage == "predict" and m.predict and m.predict.query:
        raise UsageError(
            "--stage predict reads predict.query from the database, which --offline skips",
            hint="drop --offline",
        )


class _Session:
    """One verification: the scratch runner, the recorded lock and how each stage was fed."""

    def __init__(
        self,
        m: Manifest,
        recorded: dict[str, Any],
        scratch: Path,
        tol: Tolerance,
        offline: bool,
        isolated: bool,
        trust: bool = False,
    ) -> None:
        self.m = m
        self.trust = trust
        self.recorded = recorded
        self.tol = tol
        self.offline = offline
        self.isolated = isolated
        self.runner = Runner(
            m, store_root=scratch, lock_root=scratch, predictions=ScratchPredictions()
        )
        project = Store(m.root, model_format=m.model.format, plugins=m.plugins, allow_pickles=trust)
        self.art = Artifacts(m, project, self.runner, offline)
        self.current_env = env.capture(m.plugins)

    def verify_stage(self, stage: str) -> StageReport:
        rec = self.recorded["stages"].get(stage)
        if rec is None:
            return never_recorded(stage, lockfile.LOCK_NAME)
        if stage == "extract" and self.offline:
            return self._offline_extract(rec)
        if stage == "predict" and self.offline and self.m.predict and self.m.predict.query:
            return _skipped(stage, "--offline: predict.query reads the database")
        fed = self._feed(stage)
        if isinstance(fed, StageReport):
            return fed
        t0 = time.perf_counter()
        try:
            self.runner.run_stage(stage, force=True)
        except SourceError as exc:
            raise SourceError(
                exc.message,
                hint=f"{exc.hint}; or verify from the recorded snapshot with 'mlrepro verify "
                "--offline'",
            ) from None
        except (DataError, PredictionRejected) as exc:
            return self._failed(stage, rec, exc, fed)
        report = judge(
            stage, rec, self.runner.lock["stages"][stage], self.recorded, self.art, self.tol
        )
        report.duration_s = time.perf_counter() - t0
        report.fed = fed
        for up, how in fed.items():
            if how == "reproduced":
                why = (
                    "the recorded one is a pickle, loaded only with --trust-artifacts"
                    if self._untrusted(self.recorded["stages"].get(up), STAGES[stage].needs()[up])
                    else "the recorded one is not available"
                )
                report.notes.append(
                    f"fed the re-executed output of '{up}' ({why}): differences may be "
                    "inherited from it"
                )
        if stage == "extract" and report.verdict == SOURCE_CHANGED:
            report.notes.append("downstream stages start from the recorded snapshot")
        explain(report, rec, self.current_env, self.m)
        return report

    def _failed(
        self, stage: str, rec: dict[str, Any], exc: MlreproError, fed: dict[str, str]
    ) -> StageReport:
        """A stage that cannot re-execute on this data: its verdict, not a crash."""
        reasons = [f"re-execution failed: {exc.message}"]
        verdict = "different"
        if stage == "extract":
            verdict = SOURCE_CHANGED
        elif stage == "predict" and self._predict_input_changed(rec):
            verdict = SOURCE_CHANGED
            reasons.insert(0, "the prediction input changed since the recording")
        report = StageReport(stage, verdict, reasons, fed=fed)
        if stage == "extract":
            report.notes.append("downstream stages start from the recorded snapshot")
        explain(report, rec, self.current_env, self.m)
        return report

    def _predict_input_changed(self, rec: dict[str, Any]) -> bool:
        if not (self.m.predict and self.m.predict.input):
            return True  # predict.query is not pinned: its rows are the likely change
        now = self.runner.extra_inputs("predict").get("input")
        return rec.get("inputs", {}).get("input") != now

    def _offline_extract(self, rec: dict[str, Any]) -> StageReport:
        for name in ("snapshot", "schema"):
            out = rec["outputs"].get(name, {})
            state = self.art.state(out)
            if state == "missing":
                raise ArtifactError(
                    f"--offline needs the recorded {name} {out.get('path')}, which is missing",
                    hint="verify without --offline to re-query the source, or restore "
                    ".mlrepro/ from where the project was recorded",
                )
            if state == TAMPERED:
                report = StageReport("extract", TAMPERED)
                report.reasons.append(
                    f"recorded artifact {out['path']} (extract.{name}) was modified or "
                    "corrupted: its bytes no longer match the lock's file_hash"
                )
                return report
        self._adopt("extract", ["snapshot", "schema"])
        report = _skipped("extract", "--offline: the source was not queried")
        report.outputs = {
            name: {
                "recorded": out.get("fingerprint"),
                "reproduced": None,
                "verdict": SKIPPED,
                "artifact": "ok",
            }
            for name, out in rec["outputs"].items()
        }
        report.notes.append("downstream stages start from the recorded snapshot (intact)")
        return report

    # ------------------------------------------------------------------ feeding
    def _feed(self, stage: str) -> dict[str, str] | StageReport:
        """Put the upstream records ``stage`` reads into the scratch lock."""
        fed = {}
        for up, outs in STAGES[stage].needs().items():
            have = self.runner.lock["stages"].get(up)
            rec = self.recorded["stages"].get(up)
            same = bool(have and rec and _same_outputs(have, rec, outs)) and all(
                (self.runner.store.root / have["outputs"][o]["path"]).is_file() for o in outs
            )
            untrusted = self._untrusted(rec, outs)
            if same or (rec and self._adopt(up, outs)):
                fed[up] = "recorded"
            elif have and (untrusted or not self.isolated) or untrusted and self._reexecute(up):
                fed[up] = "reproduced"
            else:
                return self._unfed(stage, up, rec, outs)
        return fed

    def _untrusted(self, rec: dict[str, Any] | None, outs: list[str]) -> bool:
        """Whether feeding ``outs`` of ``rec`` would unpickle a model the user did not trust."""
        if self.trust or rec is None:
            return False
        return any(is_pickle(rec["outputs"].get(o, {})) for o in outs)

    def _reexecute(self, up: str) -> bool:
        """Re-execute ``up`` in the scratch folder (its own upstream fed first)."""
        fed = self._feed(up)
        if isinstance(fed, StageReport):
            return False
        try:
            self.runner.run_stage(up, force=True)
        except MlreproError:
            return False
        return True

    def _unfed(
        self, stage: str, up: str, rec: dict[str, Any] | None, outs: list[str]
    ) -> StageReport:
        if rec is None:
            why = f"'{up}' is not recorded in {lockfile.LOCK_NAME}"
        else:
            states = {o: self.art.state(rec["outputs"].get(o, {})) for o in outs}
            why = (
                ", ".join(f"recorded {up}.{o} is {s}" for o, s in states.items() if s != "ok")
                or f"'{up}' could not be re-executed"
            )
        if self.isolated:
            raise ArtifactError(
                f"--stage {stage} needs the recorded outputs of '{up}': {why}",
                hint="verify the whole pipeline (without --stage), or restore .mlrepro/ "
                "from where the project was recorded",
            )
        return _skipped(stage, f"cannot run: {why}")

    def _adopt(self, up: str, outs: list[str]) -> bool:
        """Copy the recorded outputs of ``up`` into the scratch store and lock.

        The outputs in ``outs`` must be intact; the stage's other outputs come along when
        they are (a later stage may read them: predict reads extract's schema).
        """
        rec = self.recorded["stages"][up]
        if any(self.art.state(rec["outputs"].get(o, {})) != "ok" for o in outs):
            return False
        if self._untrusted(rec, outs):
            return False  # the scratch runner would unpickle it
        for out in rec["outputs"].values():
            if self.art.state(out) == "ok" and (self.trust or not is_pickle(out)):
                _link(self.m.root / out["path"], self.runner.store.root / out["path"])
        self.runner.adopt(up, copy.deepcopy(rec))
        return True


def _same_outputs(a: dict[str, Any], b: dict[str, Any], outs: list[str]) -> bool:
    fa, fb = a.get("outputs", {}), b.get("outputs", {})
    return all(
        o in fa and o in fb and fa[o].get("fingerprint") == fb[o].get("fingerprint") for o in outs
    )


def _skipped(stage: str, reason: str) -> StageReport:
    return StageReport(stage, SKIPPED, [reason])


def _link(src: Path, dest: Path) -> None:
    """Hard-link (or copy) a recorded artifact into the scratch store; never the reverse."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:  # another filesystem, or links not allowed
        shutil.copyfile(src, dest)

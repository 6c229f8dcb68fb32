"""Bundle metadata (from the lock) and the model card (markdown) rendered from it."""

from __future__ import annotations

import json
from typing import Any

from mlrepro.pipeline.registry import TRAINED_STAGES
from mlrepro.predict.contract import column_specs
from mlrepro.version import __version__


def metadata(manifest: Any, lock: dict[str, Any]) -> dict[str, Any]:
    """Everything production needs to know about the model, as plain JSON."""
    stages = lock["stages"]
    extract, features, train = stages["extract"], stages["features"], stages["train"]
    ex, tr = extract.get("details", {}), train.get("details", {})
    return {
        "project": manifest.name,
        "description": manifest.description,
        "task": tr.get("task"),
        "target": manifest.target,
        "classes": tr.get("classes"),
        "model_fingerprint": train["outputs"]["pipeline"]["fingerprint"],
        "input_columns": list(tr.get("input_columns", [])),
        "open_categories": list(tr.get("open_categories", [])),
        "id_columns": list(manifest.source.order_by),
        "feature_columns": list(features.get("details", {}).get("output_columns", [])),
        "features": list(tr.get("features", [])),
        "estimator": tr.get("estimator"),
        "hyperparameters": tr.get("hyperparameters", {}),
        "structure": tr.get("structure", {}),
        "metrics": tr.get("metrics", {}),
        "train_rows": tr.get("train_rows"),
        "test_rows": tr.get("test_rows"),
        "seed": manifest.seed,
        "data": {
            "url": ex.get("url"),
            "query": ex.get("query"),
            "as_of": ex.get("as_of"),
            "timestamp_column": ex.get("timestamp_column"),
            "order_by": ex.get("order_by"),
            "rows": ex.get("rows"),
            "snapshot_fingerprint": extract["outputs"]["snapshot"]["fingerprint"],
        },
        "fingerprints": {
            stage: {name: out["fingerprint"] for name, out in stages[stage]["outputs"].items()}
            for stage in TRAINED_STAGES
        },
        "stage_keys": {stage: stages[stage]["key"] for stage in TRAINED_STAGES},
        "warnings": [
            f"{stage}: {w}"
            for stage in ("features", "train")
            for w in stages[stage].get("details", {}).get("warnings", []) or []
        ],
        "trained_at": train.get("started_at"),
        "environment": train.get("environment", {}),
        "environment_fingerprint": train.get("environment_fingerprint"),
        "fingerprint_format": lock.get("fingerprint_format", 1),
        "mlrepro_version": __version__,
    }


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _warnings(warnings: list[str]) -> list[str]:
    if not warnings:
        return []
    return ["## Warnings", "", *(f"- {w}" for w in warnings), ""]


def _plugin_versions(pkgs: dict[str, Any]) -> str:
    names = ("lightgbm", "xgboost", "catboost")
    return "".join(f", {n} {pkgs[n]}" for n in names if pkgs.get(n))


def render(meta: dict[str, Any], schema_yaml: str) -> str:
    """The model card: data as_of and rows, features, parameters, metrics, fingerprints."""
    data, env = meta["data"], meta.get("environment", {})
    pkgs = env.get("packages", {})
    target = f"`{meta['target']}`"
    task = meta["task"] + (f", classes {meta['classes']}" if meta.get("classes") else "")
    lines = [f"# Model card: {meta['project']}", ""]
    if meta.get("description"):
        lines += [meta["description"], ""]
    lines += _table(
        ("", ""),
        [
            ("Task", f"{task}; target {target}"),
            ("Model", f"`{meta['estimator']}`"),
            ("Model fingerprint", f"`{meta['model_fingerprint']}`"),
            ("Trained at", meta.get("trained_at") or "?"),
            (
                "Environment",
                f"Python {env.get('python', '?')}, scikit-learn {pkgs.get('scikit-learn', '?')}"
                f"{_plugin_versions(pkgs)}, mlrepro {meta['mlrepro_version']}",
            ),
        ],
    )
    lines += [
        "",
        "## Training data",
        "",
        f"`{data['query']}` on `{data['url']}`, as of **{data['as_of']}** "
        f"(rows with `{data['timestamp_column']}` up to then), ordered by "
        f"{', '.join(data['order_by'] or [])}: **{data['rows']} rows**, snapshot fingerprint "
        f"`{data['snapshot_fingerprint']}`. Split (seed {meta['seed']}): "
        f"{meta['train_rows']} training rows, {meta['test_rows']} held-out rows.",
        "",
        "## Input columns",
        "",
    ]
    specs = column_specs(schema_yaml, meta["input_columns"])
    lines += _table(
        ("column", "type", "missing values", "allowed values"),
        [
            (
                f"`{s['name']}`",
                s["dtype"],
                "allowed" if s["nullable"] else "rejected",
                ", ".join(map(str, s["categories"])) if s["categories"] else "",
            )
            for s in specs
        ],
    )
    ids = ", ".join(f"`{c}`" for c in meta["id_columns"])
    lines += [
        "",
        "Other columns are ignored"
        + (f", except the id column(s) {ids}, copied to the output when present" if ids else "")
        + ". Rows that break these rules are rejected with a reason.",
        "",
        "## Features",
        "",
        f"After the feature steps ({len(meta['feature_columns'])} columns), the model uses "
        f"{len(meta['features'])}, in this order: "
        + ", ".join(f"`{f}`" for f in meta["features"])
        + ".",
        "",
        *_warnings(meta.get("warnings") or []),
        "## Parameters",
        "",
        *_table(("parameter", "value"), sorted(meta["hyperparameters"].items())),
        "",
        "## Metrics (held-out rows)",
        "",
        *_table(("metric", "value"), [(k, f"{v:.6g}") for k, v in meta["metrics"].items()]),
        "",
        "## Fingerprints",
        "",
        *_table(
            ("stage", "artifact", "fingerprint"),
            [
                (stage, name, f"`{fp}`")
                for stage, outs in meta["fingerprints"].items()
                for name, fp in outs.items()
            ],
        ),
        "",
        "## Use",
        "",
        "    mlrepro predict --bundle MODEL.mlrepro --input new.csv --output predictions.parquet",
        "",
        "    from mlrepro import load_bundle",
        '    model = load_bundle("MODEL.mlrepro")',
        "    predictions = model.predict(frame)",
        "",
    ]
    return "\n".join(lines)

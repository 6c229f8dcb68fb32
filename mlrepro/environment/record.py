"""Capture the environment a stage ran in, diff two captures, rank what can explain a result.

The record (``capture``) lists every installed distribution (name, version, its direct URL
or wheel hash when pip recorded one, its requirements), the Python build, the OS, the CPU
model and the instruction sets numpy dispatches on, threadpoolctl's BLAS/OpenMP libraries
with their threading layer and thread counts, and the environment variables that change
numerics (``OMP_NUM_THREADS``, ``MKL_CBWR``, ...). It is plain JSON; the lock stores it once
with its own fingerprint.

Older records (mlrepro 0.1 locks) hold only ``python``, ``implementation``, ``platform``,
``machine`` and a ``packages`` map of 11 distributions: every function here accepts them.

pandas and scikit-learn are never imported at module level; ``capture`` imports numpy,
scipy.linalg and scikit-learn's OpenMP helpers (when installed) so that the BLAS/OpenMP
libraries they load are visible to threadpoolctl, the same way in every process.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

RECORD_FORMAT = 2  # 1: the 0.1 record (11 packages); 2: every distribution, CPU, threads

# The distributions the 0.1 record listed: kept in "packages" for older readers.
PACKAGES = (
    "mlrepro",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "joblib",
    "pyarrow",
    "pandera",
    "sqlalchemy",
    "blake3",
    "threadpoolctl",
)
#: Gradient-boosting libraries (tested as plugins): recorded when the project's plugins
#: name them (only then: whether some other code loaded them must not change the record).
BOOSTING = ("lightgbm", "xgboost", "catboost")

# mlrepro's own code in a pipeline (FeatureSteps, fingerprints) computes with these.
MLREPRO_NUMERICS = ("numpy", "pandas", "pyarrow")

# Environment variables that change numerical results or their thread counts.
NUMERIC_VARIABLE_PREFIXES = (
    "OMP_",
    "KMP_",
    "GOMP_",
    "MKL_",
    "OPENBLAS_",
    "GOTO_",
    "BLIS_",
    "VECLIB_",
    "NUMEXPR_",
    "NPY_",
    "SKLEARN_",
    "SCIPY_",
    "ARROW_",
)
NUMERIC_VARIABLES = ("PYTHONHASHSEED", "CUDA_VISIBLE_DEVICES")
# Set by scikit-learn's own import (``os.environ.setdefault``): every process that loads a
# pipeline has these values unless the user set others. They are recorded only when they
# differ, so whether scikit-learn was imported before a capture does not change the record.
IMPORT_DEFAULTS = {"KMP_DUPLICATE_LIB_OK": "True", "KMP_INIT_AT_FORK": "FALSE"}

# Instruction sets that change which kernels numpy and BLAS run (and so, rounding).
CPU_FLAG_PATTERN = re.compile(r"^(avx|fma|f16c|sse4|asimd|neon|sve|vsx|vx|amx)", re.IGNORECASE)


def canonical_name(name: str) -> str:
    """PEP 503 name: ``SQLAlchemy`` -> ``sqlalchemy``, ``ruamel.yaml`` -> ``ruamel-yaml``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _requires(dist: metadata.Distribution) -> list[str]:
    """Names of the distribution's unconditional requirements (extras left out)."""
    out = set()
    try:
        requires = list(dist.requires or [])
    except Exception:  # unreadable metadata of a broken installation
        return []
    for req in requires:
        name, _, marker = req.partition(";")
        if "extra" in marker:
            continue
        m = _REQ_NAME.match(name)
        if m:
            out.add(canonical_name(m.group(1)))
    return sorted(out)


def _without_credentials(url: str) -> str:
    """A URL with any user:token@ part removed (tokens in VCS URLs are secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def _origin(dist: metadata.Distribution) -> dict[str, Any]:
    """What pip's ``direct_url.json`` (PEP 610) says about where the distribution came from."""
    try:
        text = dist.read_text("direct_url.json")
    except Exception:
        return {}
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return {}
    out: dict[str, Any] = {"url": _without_credentials(data["url"])}
    dir_info, archive, vcs = data.get("dir_info"), data.get("archive_info"), data.get("vcs_info")
    if isinstance(dir_info, dict) and dir_info.get("editable"):
        out["editable"] = True
    if isinstance(archive, dict):
        hashes = archive.get("hashes")
        if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
            out["hash"] = f"sha256={hashes['sha256']}"
        elif isinstance(archive.get("hash"), str):
            out["hash"] = archive["hash"]
    if isinstance(vcs, dict) and isinstance(vcs.get("commit_id"), str):
        out["vcs"] = str(vcs.get("vcs", "git"))
        out["commit"] = vcs["commit_id"]
    return out


def distributions() -> dict[str, dict[str, Any]]:
    """Every importable distribution: the first one on ``sys.path`` wins, as for imports."""
    out: dict[str, dict[str, Any]] = {}
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            name = None
        if not name:
            continue
        key = canonical_name(name)
        if key in out:
            continue
        entry: dict[str, Any] = {"version": str(dist.version), "requires": _requires(dist)}
        entry.update(_origin(dist))
        out[key] = entry
    return dict(sorted(out.items()))


def module_owners() -> dict[str, list[str]]:
    """Top-level module -> the distributions that provide it (canonical names)."""
    try:
        mapping = metadata.packages_distributions()
    except Exception:
        return {}
    return {
        mod: sorted({canonical_name(d) for d in dists})
        for mod, dists in sorted(mapping.items())
        if mod.isidentifier() and not mod.startswith("_")
    }


def _cpu_model() -> str:
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh,
    ):
        for line in fh:
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                return value.strip()
    if sys.platform == "darwin":
        import subprocess

        with contextlib.suppress(Exception):
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.stdout.strip():
                return out.stdout.strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """Instruction sets that change numerics: the kernel's list (Linux), else numpy's.

    The kernel's list does not depend on the numpy version (numpy's names change with it).
    """
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh,
    ):
        for line in fh:
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return sorted({f for f in value.split() if CPU_FLAG_PATTERN.match(f)})
    features: dict[str, bool] = {}
    for mod in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        with contextlib.suppress(Exception):
            import importlib

            features = dict(importlib.import_module(mod).__cpu_features__)
            break
    return sorted(f.lower() for f, on in features.items() if on and CPU_FLAG_PATTERN.match(f))


def _load_numeric_libraries() -> None:
    """Import what loads BLAS and OpenMP, so threadpoolctl sees the same set in any process."""
    import importlib

    for mod in ("numpy", "scipy.linalg", "sklearn.utils._openmp_helpers"):
        with contextlib.suppress(Exception):
            importlib.import_module(mod)


def threadpools() -> list[dict[str, Any]]:
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries (file paths left out)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    try:
        info = threadpool_info()
    except Exception:
        return []
    keep = ("user_api", "internal_api", "prefix", "version", "threading_layer", "architecture")
    pools = []
    for lib in info:
        entry = {k: lib.get(k) for k in keep if lib.get(k) is not None}
        entry["num_threads"] = lib.get("num_threads")
        owner = _owner(str(lib.get("filepath") or ""))
        if owner:
            entry["loaded_by"] = owner  # numpy's and scipy's own copies of OpenBLAS
        pools.append(entry)
    pools.sort(key=lambda p: json.dumps(p, sort_keys=True, default=str))  # load order varies
    return pools


def _owner(path: str) -> str | None:
    """The package a bundled library ships with: ``.../site-packages/numpy.libs/x.so`` ->
    ``numpy``; a system library has none."""
    parts = re.split(r"[\\/]", path)
    for i, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages") and i + 1 < len(parts) - 1:
            name = parts[i + 1]
            return name[: -len(".libs")] if name.endswith(".libs") else name
    return None


def numeric_variables(environ: Any = None) -> dict[str, str]:
    """The variables that change numerics, without those at scikit-learn's import defaults."""
    environ = os.environ if environ is None else environ
    return {
        k: str(v)
        for k, v in sorted(environ.items())
        if (k.startswith(NUMERIC_VARIABLE_PREFIXES) or k in NUMERIC_VARIABLES)
        and IMPORT_DEFAULTS.get(k) != str(v)
    }


def capture(
    extra_modules: tuple[str, ...] = (), *, cache_dir: Path | None = None
) -> dict[str, Any]:
    """The environment record: everything installed and everything that changes numerics.

    ``extra_modules`` (the manifest's plugins) is kept for the callers of the 0.1 API: every
    distribution is recorded now, a plugin's included. ``cache_dir`` (a project's store
    folder): reuse the installed-distribution half of the record while the installation is
    unchanged (``environment/cache.py``); None always captures afresh.
    """
    del extra_modules
    variables = numeric_variables()
    slow: dict[str, Any] | None = None
    if cache_dir is not None:
        from mlrepro.environment import cache

        key, newest = cache.installation_key(variables)
        slow = cache.load(cache_dir / cache.CACHE_NAME, key)
    if slow is None:
        _load_numeric_libraries()
        dists = distributions()
        slow = {
            "distributions": dists,
            "packages": {k: v["version"] for k, v in dists.items()},
            "modules": module_owners(),
            "threadpools": threadpools(),
        }
        if cache_dir is not None:
            cache.store(cache_dir / cache.CACHE_NAME, key, newest, slow)
    uname = platform.uname()
    libc = platform.libc_ver()
    return {
        "record_format": RECORD_FORMAT,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "python_build": {
            "compiler": platform.python_compiler(),
            "build": " ".join(platform.python_build()),
            "executable_bits": platform.architecture()[0],
        },
        "platform": platform.platform(),
        "machine": platform.machine(),
        "os": {
            "system": uname.system,
            "release": uname.release,
            "libc": " ".join(x for x in libc if x),
        },
        "cpu": {"model": _cpu_model(), "count": os.cpu_count(), "flags": _cpu_flags()},
        "threadpools": slow["threadpools"],
        "variables": variables,
        "packages": slow["packages"],
        "distributions": slow["distributions"],
        "modules": slow["modules"],
    }


# ---------------------------------------------------------------------------- diffs
def _packages(record: dict[str, Any]) -> dict[str, str]:
    pk = record.get("packages")
    if not isinstance(pk, dict):
        return {}
    return {canonical_name(str(k)): str(v) for k, v in pk.items()}


def diff(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences, e.g. ``scikit-learn: 1.4.2 -> 1.5.0`` (every one)."""
    return [e["text"] for e in differences(recorded, current)]


def _pool_key(p: dict[str, Any]) -> str:
    where = f", {p['loaded_by']}'s" if p.get("loaded_by") else ""
    return f"{p.get('internal_api', '?')} ({p.get('user_api', '?')}, {p.get('prefix', '?')}{where})"


def _pools(pools: list[Any]) -> dict[str, dict[str, Any]]:
    """Thread pools by library; a second copy of the same library gets ``#2``."""
    out: dict[str, dict[str, Any]] = {}
    for p in pools:
        if not isinstance(p, dict):
            continue
        key, n = _pool_key(p), 1
        while (f"{key} #{n}" if n > 1 else key) in out:
            n += 1
        out[f"{key} #{n}" if n > 1 else key] = p
    return out


def _pool_text(p: dict[str, Any] | None) -> str:
    if not p:
        return "absent"
    parts = [str(p.get("version") or "?")]
    if p.get("threading_layer"):
        parts.append(f"threading {p['threading_layer']}")
    if p.get("architecture"):
        parts.append(str(p["architecture"]))
    parts.append(f"{p.get('num_threads')} threads")
    return ", ".join(parts)


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[dict[str, Any]]:
    """Every difference, structured: ``{kind, name, recorded, current, text}``.

    Fields an older record does not have (CPU, thread pools, variables) are not differences.
    """
    out: list[dict[str, Any]] = []

    def add(kind: str, name: str, a: Any, b: Any, text: str | None = None) -> None:
        sa, sb = "absent" if a is None else str(a), "absent" if b is None else str(b)
        out.append(
            {
                "kind": kind,
                "name": name,
                "recorded": a,
                "current": b,
                "text": text or f"{name}: {sa} -> {sb}",
            }
        )

    for key in ("python", "implementation", "platform", "machine"):
        if recorded.get(key) != current.get(key):
            add(
                "python" if key in ("python", "implementation") else "platform",
                key,
                *_pair(recorded, current, key),
            )
    rp, cp = _packages(recorded), _packages(current)
    names = set(rp) | set(cp)
    if "distributions" not in recorded:  # a 0.1 record lists only some packages
        names = set(rp) | {canonical_name(p) for p in PACKAGES}
    for name in sorted(names):
        if rp.get(name) != cp.get(name):
            add("package", name, rp.get(name), cp.get(name))
    if isinstance(recorded.get("cpu"), dict):
        rc, cc = recorded["cpu"], current.get("cpu") or {}
        if rc.get("model") != cc.get("model"):
            add("cpu", "cpu model", rc.get("model"), cc.get("model"))
        rf, cf = set(rc.get("flags") or []), set(cc.get("flags") or [])
        if rf != cf:
            gone, new = sorted(rf - cf), sorted(cf - rf)
            text = "cpu instruction sets:" + (f" lost {', '.join(gone)}" if gone else "")
            text += (";" if gone and new else "") + (f" gained {', '.join(new)}" if new else "")
            add("cpu", "cpu flags", sorted(rf), sorted(cf), text)
    if isinstance(recorded.get("threadpools"), list):
        rt, ct = _pools(recorded["threadpools"]), _pools(current.get("threadpools") or [])
        for key in sorted(set(rt) | set(ct)):
            a, b = rt.get(key), ct.get(key)
            if a != b:
                add("threads", key, a, b, f"{key}: {_pool_text(a)} -> {_pool_text(b)}")
    if isinstance(recorded.get("variables"), dict):
        # unset means scikit-learn's import default (an older record may list those)
        rv = {**IMPORT_DEFAULTS, **recorded["variables"]}
        cv = {**IMPORT_DEFAULTS, **(current.get("variables") or {})}
        for key in sorted(set(rv) | set(cv)):
            if rv.get(key) != cv.get(key):
                add(
                    "variable",
                    key,
                    rv.get(key),
                    cv.get(key),
                    f"${key}: {rv.get(key, 'unset')} -> {cv.get(key, 'unset')}",
                )
    return out


def _pair(a: dict[str, Any], b: dict[str, Any], key: str) -> tuple[Any, Any]:
    return a.get(key), b.get(key)


# ---------------------------------------------------------------------------- ranking
PIPELINE, DEPENDENCY, OTHER = "pipeline", "dependency", "other"


def owners_of(modules: list[str], *records: dict[str, Any]) -> dict[str, str]:
    """Distribution -> the first module (of ``modules``) it provides, from the records' maps,
    then this interpreter's, then the module's own name."""
    maps: list[dict[str, Any]] = [
        r["modules"] for r in records if isinstance(r.get("modules"), dict)
    ]
    current = None
    out: dict[str, str] = {}
    for mod in modules:
        top = mod.split(".")[0]
        found: list[str] = []
        for m in maps:
            found = [canonical_name(str(d)) for d in m.get(top) or []]
            if found:
                break
        if not found:
            if current is None:
                current = module_owners()
            found = current.get(top) or [canonical_name(top)]
        for dist in found:
            out.setdefault(dist, mod)
    return out


def _requires_graph(*records: dict[str, Any]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    sources = [r.get("distributions") for r in records]
    if not any(isinstance(s, dict) for s in sources):  # 0.1 records: this interpreter's graph
        sources = [distributions()]
    for src in sources:
        if not isinstance(src, dict):
            continue
        for name, entry in src.items():
            reqs = entry.get("requires") if isinstance(entry, dict) else None
            if isinstance(reqs, list):
                graph.setdefault(canonical_name(str(name)), set()).update(
                    canonical_name(str(r)) for r in reqs
                )
    return graph


def tiers(class_paths: list[str], *records: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Distribution -> (tier, why) for the packages that matter to a pipeline.

    ``pipeline``: a distribution one of the pipeline's classes comes from (``mlrepro`` for
    its feature steps); ``dependency``: what those require, transitively (for mlrepro only
    the libraries its steps compute with: numpy, pandas, pyarrow). Everything else is
    ``other``.
    """
    owners = owners_of([c for c in class_paths if c], *records)
    owners = dict(sorted(owners.items(), key=lambda kv: kv[0] == "mlrepro"))  # mlrepro last
    out: dict[str, tuple[str, str]] = {d: (PIPELINE, mod) for d, mod in owners.items()}
    graph = _requires_graph(*records)
    todo: list[tuple[str, str]] = []
    for dist in owners:
        reqs = MLREPRO_NUMERICS if dist == "mlrepro" else sorted(graph.get(dist, ()))
        todo += [(r, dist) for r in reqs]
    while todo:
        dist, parent = todo.pop(0)
        if dist in out:
            continue
        out[dist] = (DEPENDENCY, parent)
        todo += [(r, dist) for r in sorted(graph.get(dist, ()))]
    return out


def ranked(
    recorded: dict[str, Any], current: dict[str, Any], class_paths: list[str]
) -> list[dict[str, Any]]:
    """Differences, most likely cause first: the pipeline's packages, their dependencies,
    numerics (BLAS and threads, CPU instruction sets, variables, Python), then the rest.

    Each entry gets ``tier`` and ``matters`` (a package a deployment gate should refuse).
    """
    tier_of = tiers(class_paths, recorded, current)
    order = {PIPELINE: 0, DEPENDENCY: 1, "numerics": 2, OTHER: 3}
    out = []
    for entry in differences(recorded, current):
        entry = dict(entry)
        if entry["kind"] == "package":
            tier, why = tier_of.get(entry["name"], (OTHER, ""))
            entry["tier"] = tier
            entry["matters"] = tier != OTHER
            if tier == PIPELINE:
                entry["text"] += f" (the pipeline's {why})"
            elif tier == DEPENDENCY:
                entry["text"] += f" (required by {why})"
        elif entry["kind"] in ("threads", "cpu", "variable", "python"):
            entry["tier"], entry["matters"] = "numerics", False
        else:
            entry["tier"], entry["matters"] = OTHER, False
        out.append(entry)
    out.sort(key=lambda e: (order[e["tier"]], e["kind"] != "package", e["name"]))
    return out


# Which differences can explain a stage: its classes' packages, and for the stages that
# compute (fit, transform, predict) the numerics of the machine.
NUMERIC_STAGES = ("features", "select", "train", "predict")
STAGE_PACKAGES = {"extract": ("pandas", "pyarrow", "sqlalchemy")}


def causes(
    stage: str, recorded: dict[str, Any], current: dict[str, Any], class_paths: list[str]
) -> list[str]:
    """The environment differences that can explain a stage's result, most likely first."""
    if not recorded or not current:
        return []
    if stage == "extract":
        want = set(STAGE_PACKAGES["extract"])
        return [
            e["text"]
            for e in differences(recorded, current)
            if e["kind"] == "package" and e["name"] in want
        ]
    out = []
    for e in ranked(recorded, current, class_paths):
        package = e["kind"] == "package" and e["matters"]
        if package or (e["tier"] == "numerics" and stage in NUMERIC_STAGES):
            out.append(e["text"])
    return out


def capture_like(recorded: dict[str, Any]) -> dict[str, Any]:
    """The current environment, comparable with ``recorded`` (every distribution is listed)."""
    del recorded
    return capture()

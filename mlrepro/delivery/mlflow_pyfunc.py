"""The MLflow pyfunc flavour of an mlrepro bundle (imported only where MLflow is installed).

The exported MLflow model is a "model from code": its ``model.py`` (``MODEL_CODE``) builds
``BundleModel``, so the MLflow model holds no pickle of its own. ``load_context`` verifies
the bundle inside the MLflow model (every member, pinned to the fingerprint recorded in the
model config at export) before its pipeline is unpickled, exactly as ``load_bundle`` does.
``predict`` is ``Bundle.predict``: the same validation, the same columns, the same numbers.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from mlrepro.errors import ArtifactError

BUNDLE_ARTIFACT = "bundle"
FINGERPRINT_KEY = "bundle_fingerprint"
MODEL_CODE = """# written by 'mlrepro export --mlflow': serves the verified bundle in artifacts/
import mlflow

from mlrepro.delivery.mlflow_pyfunc import BundleModel

mlflow.models.set_model(BundleModel())
"""


class BundleModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    """Serves one pinned ``.mlrepro`` bundle."""

    def __init__(self) -> None:
        self._bundle: Any = None

    def load_context(self, context: Any) -> None:
        from mlrepro.delivery.api import load_bundle

        config = getattr(context, "model_config", None) or {}
        pin = config.get(FINGERPRINT_KEY)
        if not isinstance(pin, str) or not pin:
            raise ArtifactError(
                f"this MLflow model's config has no {FINGERPRINT_KEY}, so its bundle cannot "
                "be checked; refusing to load it",
                hint="export it again with 'mlrepro export --mlflow DIR'",
            )
        self._bundle = load_bundle(context.artifacts[BUNDLE_ARTIFACT], expect_fingerprint=pin)

    # a DataFrame type hint: MLflow validates with the signature and does not warn
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        if self._bundle is None:
            self.load_context(context)
        return self._bundle.predict(model_input)

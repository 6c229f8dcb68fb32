"""The hand-written scikit-learn script mlrepro is compared against (diabetes example).

Does the same work as `mlrepro run --force` on examples/diabetes: as-of query in id order,
seeded split, impute + one-hot + scale, SelectKBest(6), RandomForest(200, depth 8), held-out
metrics, model saved with joblib, predictions for data/new_visits.csv written to parquet.
Usage: python baseline_sklearn.py PROJECT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import pandas as pd
import sqlalchemy as sa
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.impute import SimpleImputer
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def main(project: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{project / 'data' / 'diabetes.db'}")
    df = pd.read_sql(
        "SELECT * FROM visits WHERE datetime(recorded_at) <= datetime('2026-06-30 00:00:00') "
        "ORDER BY visit_id",
        engine,
    )
    y = df.pop("progression")
    X = df.drop(columns=["visit_id", "recorded_at"])
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    features = ColumnTransformer(
        [
            ("impute", SimpleImputer(strategy="median"), ["bmi", "bp"]),
            ("onehot", OneHotEncoder(sparse_output=False), ["clinic"]),
        ],
        remainder="passthrough",
    )
    model = Pipeline(
        [
            ("features", make_pipeline(features, StandardScaler())),
            ("select", SelectKBest(f_regression, k=6)),
            ("model", RandomForestRegressor(n_estimators=200, max_depth=8, random_state=42)),
        ]
    )
    model.fit(X_train, y_train)
    pred = model.predict(X_test)
    print(f"r2={r2_score(y_test, pred):.4f} mae={mean_absolute_error(y_test, pred):.2f}")
    out = project / ".baseline"
    out.mkdir(exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    new = pd.read_csv(project / "data" / "new_visits.csv")
    preds = pd.DataFrame({"visit_id": new["visit_id"], "prediction": model.predict(new)})
    preds.to_parquet(out / "predictions.parquet")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

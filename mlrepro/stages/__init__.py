"""Pipeline stages: pure functions over frames and estimators (the runner does the I/O)."""

STAGES = ("extract", "features", "select", "train", "predict")

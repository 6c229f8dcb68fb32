"""The environment a stage ran in: the record, its differences, and recreating it."""

"""mlrepro.pipeline."""

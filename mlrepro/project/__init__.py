"""mlrepro.project."""

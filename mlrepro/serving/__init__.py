"""mlrepro.serving."""

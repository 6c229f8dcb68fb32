"""mlrepro.verify."""

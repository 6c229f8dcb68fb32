"""mlrepro.core."""

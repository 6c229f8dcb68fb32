"""mlrepro.cli."""

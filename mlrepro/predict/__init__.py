"""mlrepro.predict."""

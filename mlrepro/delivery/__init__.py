"""mlrepro.delivery."""

"""mlrepro: reproducible ML pipelines from research to production."""

__version__ = "0.1.0"

__all__ = ["__version__"]

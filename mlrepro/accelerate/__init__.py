"""Accelerated runtime: a fitted pipeline compiled to array programs, proven equivalent.

Sits between ``predict`` (which uses it) and ``transformers`` (whose fitted steps it reads).
"""

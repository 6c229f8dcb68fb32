"""Reliability and security tests (issue #6): crashes, concurrency, tampering, bad input."""

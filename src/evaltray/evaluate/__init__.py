"""Evaluation: run the system under test on a release, score it, and say how sure we are (statistics)."""

"""Refinement trace tests: traces of the implementation checked against the models."""

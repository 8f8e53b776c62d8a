"""Atomic interfaces (specifications) of each layer, as models."""

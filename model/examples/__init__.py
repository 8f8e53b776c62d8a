"""Examples of models that are not WormSpace layers (TwoPhase over TCommit)."""

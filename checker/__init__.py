"""The model checker: exploration, refinement, traces and proofs; it knows nothing of WormSpace."""

"""The ``wormspace`` command line."""


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    return 0

"""The `tfew` subcommands for statistics, significance tests and report tables."""


def add_commands(commands) -> None:
    """Register this module's subcommands on the top-level parser."""

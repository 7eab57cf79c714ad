"""The `tfew` (IA)^3 format conversion and benchmark subcommands."""


def add_commands(commands) -> None:
    """Register this module's subcommands on the top-level parser."""

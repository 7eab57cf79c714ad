"""The `tfew` subcommands for task data: listing, export and imports."""


def add_commands(commands) -> None:
    """Register this module's subcommands on the top-level parser."""

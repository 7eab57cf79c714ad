"""The `tfew` subcommands for model downloads and workflow helpers."""


def add_commands(commands) -> None:
    """Register this module's subcommands on the top-level parser."""

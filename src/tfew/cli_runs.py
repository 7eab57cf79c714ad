"""The `tfew` subcommands for in-context learning baselines and cost accounting."""


def add_commands(commands) -> None:
    """Register this module's subcommands on the top-level parser."""

"""Exception types that the command line turns into one clear message instead of a traceback."""


class TfewError(Exception):
    """A user-facing error: the message names the value or file at fault and says how to fix it."""


class DataNotFoundError(TfewError):
    """A dataset split or few-shot file is missing from the mirror, or the hub cannot serve it."""


class RowValidationError(TfewError):
    """A data row is malformed: the message names the file, the line and the field."""


def require_positive(args, *names: str) -> None:
    """Raise for a command-line option below 1; None (an option left out) passes, and lists are checked item by item."""
    for name in names:
        values = getattr(args, name)
        for value in values if isinstance(values, list) else [values]:
            if value is not None and value < 1:
                raise TfewError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")

"""Exception types that the command line turns into one clear message instead of a traceback."""


class TfewError(Exception):
    """A user-facing error: the message names the value or file at fault and says how to fix it."""


class DataNotFoundError(TfewError):
    """A dataset split or few-shot file is missing from the mirror, or the hub cannot serve it."""


class RowValidationError(TfewError):
    """A data row is malformed: the message names the file, the line and the field."""

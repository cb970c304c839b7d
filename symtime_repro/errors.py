"""The one exception type the command line turns into a single readable line."""


class UserError(Exception):
    """A problem the user can fix: bad override, missing file, mismatched checkpoint.

    The message must say what is wrong *and* what to do about it; the CLI prints it as one line
    (no traceback) and exits with status 2.
    """


class RunFailed(Exception):
    """The run started but could not finish (e.g. the loss became NaN): metrics.json says
    ``"status": "failed"`` with the reason, the last good checkpoint is kept, and the CLI prints one
    line and exits with status 3."""

    def __init__(self, message: str, **details) -> None:
        super().__init__(message)
        self.details = details  # what metrics.json records beside the reason (epoch, step, …)

"""The one exception type the command line turns into a single readable line."""


class UserError(Exception):
    """A problem the user can fix: bad override, missing file, mismatched checkpoint.

    The message must say what is wrong *and* what to do about it; the CLI prints it as one line
    (no traceback) and exits with status 2.
    """

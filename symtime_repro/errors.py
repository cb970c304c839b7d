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


class Preempted(Exception):
    """Training stopped on SIGTERM / SIGINT after saving its state at a step boundary: the CLI exits
    with status 75 ("try again"), and ``resume=true`` continues exactly where it stopped."""

    def __init__(self, signum: "int | None", epoch: int, step: int, run_dir) -> None:
        import signal

        what = signal.Signals(signum).name if signum else "a signal to another process of this run"
        super().__init__(f"stopped by {what} inside epoch {epoch} after step {step}; the state is saved in "
                         f"{run_dir}/last.pt: continue with the same command plus resume=true "
                         f"hydra.run.dir={run_dir}")
        self.signum, self.epoch, self.step, self.run_dir = signum, epoch, step, run_dir

"""The exceptions the command line turns into a single readable line, and the exit statuses of every
command of the project (the runner, bench, report, data, m4 score, sweep)."""

EXIT_USER_ERROR = 2  # bad input: one `error:` line, nothing written (a UserError)
EXIT_RUN_FAILED = 3  # the run started and failed: metrics.json says why (a RunFailed)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by a signal (after saving, in training); run again with resume=true


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


class TrialFailed(Exception):
    """A trial of a hyper-parameter search (hydra/sweeper=optuna) that gave no value: refused, failed,
    or finished without a validation value. Raised instead of exiting, so that Hydra's job runner
    records the job as failed, the sweeper tells Optuna the trial failed, and the study goes on."""


class Preempted(BaseException):
    """The run stopped on SIGTERM / SIGINT: the CLI exits with status 75 ("try again"), and the same
    command plus ``resume=true`` continues. In training the state is saved at the step (or epoch)
    boundary first; before training nothing is lost, and during the test the training is already saved.

    A BaseException, as KeyboardInterrupt is: it can be raised from a signal handler anywhere, and
    code that catches ``Exception`` (logging handlers, Hydra's job runner, libraries) must let it pass.
    """

    def __init__(self, signum: "int | None", run_dir=None, epoch: "int | None" = None, step: "int | None" = None,
                 phase: str = "training") -> None:
        import signal

        what = signal.Signals(signum).name if signum else "a signal to another process of this run"
        again = f"resume=true hydra.run.dir={run_dir}"
        if phase == "set-up":
            message = "during set-up, before training started; nothing is lost: run the same command again"
            if run_dir is not None:
                message += f" (plus {again} to continue an interrupted run there)"
        elif phase == "testing":
            message = (f"during testing; the trained model is saved in {run_dir}: the same command plus {again} "
                       f"runs the test again")
        else:
            where = f"inside epoch {epoch} after step {step}" if step else f"after epoch {epoch}"
            message = f"{where}; the state is saved in {run_dir}/last.pt: continue with the same command plus {again}"
        super().__init__(f"stopped by {what} {message}")
        self.signum, self.epoch, self.step, self.phase, self.run_dir = signum, epoch, step, phase, run_dir

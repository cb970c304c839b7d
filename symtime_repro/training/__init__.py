"""Training: the one loop shared by every task, and the small pieces it is made of.

* ``loop``: :class:`Trainer`, whose ``fit()`` trains an epoch, validates and decides, until done.
* ``state``: what the epochs share (:class:`FitState`) and what ``fit()`` returns (:class:`FitResult`).
* ``early_stopping``: when to stop, from the validation metric the task names.
* ``resume``: what ``last.pt`` holds, and the checks before a run continues from it.
* ``schedule``, ``batches``, ``nonfinite``, ``parallel``, ``progress``, ``compile``: one concern each.
"""

from .compile import compile_model, compile_unavailable
from .loop import Trainer
from .resume import RESUME_FILE, load_resume_state
from .schedule import scheduled_lr
from .state import FitResult

__all__ = ["RESUME_FILE", "FitResult", "Trainer", "compile_model", "compile_unavailable", "load_resume_state",
           "scheduled_lr"]

"""Command line: ``python -m symtime_repro task=… dataset=… device=… [experiment=…] [overrides]``.

Hydra composes ``conf/`` into the typed schema of :mod:`symtime_repro.config`; everything else
happens in :func:`symtime_repro.run.run`. A :class:`UserError` ends the run with one line on
stderr and exit status 2, and leaves no ``metrics.json``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from .config import register_configs
from .errors import UserError

log = logging.getLogger("symtime_repro")
EXIT_USER_ERROR = 2

register_configs()


@hydra.main(config_path="pkg://symtime_repro.conf", config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    from .run import run  # imported here so `--help` and config errors stay fast

    logging.captureWarnings(True)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run(cfg, run_dir)
    except UserError as exc:
        log.error("error: %s", exc)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        log.error("interrupted; the last best checkpoint (if any) is in %s", run_dir)
        sys.exit(130)


def describe_config_error(exc: BaseException) -> str:
    """One line for a Hydra/OmegaConf composition error: what is wrong and the valid choices."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and "/" in exc.missing_cfg_file:
        group, _, choice = exc.missing_cfg_file.rpartition("/")
        options = ", ".join(sorted(exc.options or []))
        return f"{group}={choice} is not available; choose one of: {options}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else type(exc).__name__
    if getattr(exc, "override", None):  # an override that does not parse
        message = f"cannot parse override {exc.override!r}: {message}"
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException):
        detail = [line.strip() for line in str(cause).splitlines() if line.strip()]
        if detail:
            message += f": {detail[0]}"
        key = getattr(cause, "full_key", None)
        if key:
            message += f" (key: {key})"
    return message


def main() -> None:
    # We report configuration errors ourselves, as one line; Hydra's own report spans a screen.
    # HYDRA_FULL_ERROR=1 makes Hydra raise them to us instead of printing (a user's own setting wins).
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        hydra_main()
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: {describe_config_error(exc)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()

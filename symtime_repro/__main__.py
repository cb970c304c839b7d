"""Command line: ``python -m symtime_repro task=… dataset=… device=… [experiment=…] [overrides]``.

Hydra composes ``conf/`` into the typed schema of :mod:`symtime_repro.config`; everything else
happens in :func:`symtime_repro.run.run`. A :class:`UserError` ends the run with one line on
stderr and exit status 2, and leaves no ``metrics.json``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .config import register_configs
from .errors import UserError

log = logging.getLogger("symtime_repro")
EXIT_USER_ERROR = 2

register_configs()


@hydra.main(config_path="pkg://symtime_repro.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
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


if __name__ == "__main__":
    main()

"""symtime-repro: reproduce, extend and port SymTime fine-tuning on five time-series tasks."""

__version__ = "0.1.0"

"""Test metrics, one module per kind, apart from the tasks that report them and the data they score.

* :mod:`.mean_errors`: MSE and MAE summed over batches (long-term forecasting, imputation);
* :mod:`.m4`: sMAPE, MASE and OWA of the M4 competition, its submission files and the
  ``python -m symtime_repro.metrics.m4 score`` command;
* :mod:`.anomaly`: threshold, point adjustment and binary scores of anomaly detection;
* :mod:`.merge`: the rule that merges the processes' evaluation states under torchrun.

This file imports nothing, so the M4 scorer starts without loading torch (only ``mean_errors``
and ``merge`` need it).
"""

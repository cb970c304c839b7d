"""Short-term forecasting on M4 (``task=short_term dataset=M4 dataset.seasonal_pattern=Hourly``).

Protocol of the official ``short_term_forecast.py`` (TSLib's M4 pipeline), one model per pattern:

* horizon H from the pattern, input ``seq_len = 2H``; univariate, no scaling (the network's
  instance normalisation does it);
* training: every item is one series with one random cut point in its last ``history_size * H``
  points; the input is the 2H points before the cut, zero-padded on the left when the history is
  shorter; the target is the H points after it, with a mask where the series has ended (and, as
  officially, an empty target when the cut lies in the first H points);
* loss: TSLib's SMAPE loss, ``200 * mean(|f - y| / (|f| + |y|) * mask)`` with the denominator held
  constant for the gradient and 0/0 counted as 0;
* test: the last 2H training points of every series (zero-padded) forecast the H test points;
  sMAPE, MASE and OWA against Naive2; forecasts saved as ``forecast.csv`` in the M4 submission
  format (combine the six patterns' files with ``python -m symtime_repro.metrics.m4 score``).

Protocol quirk, reproduced by default (``dataset.validation=test``): the official code has no
validation split for M4 and early-stops on the test set itself (its "validation loss" is the test
sMAPE). We do the same so results compare with the published ones; the log says so.

``dataset.validation=holdout`` keeps the test set unseen (what a hyper-parameter search needs): the
last H points of every series' training part are held out (``datasets.m4.hold_out``), training
windows are cut from the series without them, and the 2H points before them (zero-padded) forecast
them. Validation reports sMAPE only (``loss`` = ``smape``): OWA would need Naive2 forecasts of the
held-out points, which the competition's Naive2 file does not have. The test is the same as with
``validation=test``: the whole training part forecasts the test horizon.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..datasets import m4
from ..errors import UserError
from ..files import atomic_write_bytes
from ..metrics import m4 as m4_metrics
from .base import BaseTask, Splits, with_task

log = logging.getLogger(__name__)


def smape_loss(forecast: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TSLib's SMAPE training loss (percent); the denominator carries no gradient."""
    denominator = forecast.detach().abs() + target.abs()
    ratio = (forecast - target).abs() / denominator
    ratio = torch.where(torch.isfinite(ratio), ratio, torch.zeros_like(ratio))  # 0/0 -> 0
    return 200 * (ratio * mask).mean()


def left_padded(series: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` points, zero-padded on the left when the series is shorter."""
    out = np.zeros(length, dtype=np.float32)
    tail = series[-length:]
    out[length - len(tail):] = tail
    return out


class M4TrainWindows(Dataset):
    """One random training window per series per item (fresh cut points every epoch).

    Cut points come from torch's RNG, which PyTorch seeds per DataLoader worker from the run seed,
    so runs repeat and workers don't draw the same windows.
    """

    def __init__(self, series: list[np.ndarray], input_len: int, horizon: int, sampling_limit: int) -> None:
        self.series = [torch.from_numpy(s.astype(np.float32)) for s in series]
        self.input_len, self.horizon, self.sampling_limit = input_len, horizon, sampling_limit

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, index):
        indices = [index] if isinstance(index, int) else list(index)
        x = torch.zeros(len(indices), self.input_len, 1)
        y = torch.zeros(len(indices), self.horizon, 1)
        mask = torch.zeros(len(indices), self.horizon, 1)
        for row, i in enumerate(indices):
            series = self.series[i]
            n = len(series)
            cut = int(torch.randint(max(1, n - self.sampling_limit), n, (1,)))  # in [low, n)
            history = series[max(0, cut - self.input_len):cut]
            x[row, self.input_len - len(history):, 0] = history
            if cut < self.horizon:
                # Official quirk, kept: TSLib slices the target from cut - label_len (= H); a negative
                # start wraps around and gives an empty target, so such a window adds no loss.
                continue
            future = series[cut:cut + self.horizon]
            y[row, :len(future), 0] = future
            mask[row, :len(future), 0] = 1.0
        batch = {"x": x, "y": y, "mask": mask}
        return {k: v[0] for k, v in batch.items()} if isinstance(index, int) else batch


TEST_ROWS = "series"              # a batch of the test split: rows of the task's M4Split
HOLDOUT_ROWS = "holdout_series"   # a batch of the held-out validation split: rows of M4Holdout.validation


class M4LastWindows(Dataset):
    """Each series' last ``input_len`` training points and, as target, its test horizon.

    Given the held-out split (``M4Holdout.validation``: shortened histories, held-out points as
    ``test``) it is the validation split; ``rows_key`` then says so to :meth:`evaluation_state`.
    """

    def __init__(self, split: m4.M4Split, input_len: int, rows_key: str = TEST_ROWS) -> None:
        self.x = torch.from_numpy(np.stack([left_padded(s, input_len) for s in split.train])).unsqueeze(-1)
        self.y = torch.from_numpy(split.test.astype(np.float32)).unsqueeze(-1)
        self.rows_key = rows_key

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        # The rows: which series these are, so a scored subset is scored against the same series' truth
        # and Naive2 (trainer.limit_eval_batches hands the task a sample of the series).
        return {"x": self.x[index], "y": self.y[index], self.rows_key: torch.as_tensor(index, dtype=torch.long)}


class ShortTermForecasting(BaseTask):
    name = "short_term"
    sample_unit = "series"

    @staticmethod
    def validates_on_test(cfg) -> bool:
        # The official loop early-stops on the test set (M4 has no validation split); holdout keeps it unseen.
        return cfg.dataset.validation == "test"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        if cfg.dataset.family != "m4":
            raise UserError(f"task=short_term runs on M4 (dataset=M4), not dataset={cfg.dataset.name}")
        self.pattern = m4.get_pattern(cfg.dataset.seasonal_pattern)
        t, horizon = cfg.task, self.pattern.horizon
        if t.pred_len is not None and t.pred_len != horizon:
            raise UserError(f"task.pred_len={t.pred_len} but M4 {self.pattern.name} has horizon {horizon}; "
                            f"leave task.pred_len=null to derive it")
        # The official input length is 2H; a typed task.seq_len wins.
        self.cfg = with_task(cfg, pred_len=horizon, seq_len=t.seq_len if t.seq_len is not None else 2 * horizon)
        self.split: m4.M4Split | None = None
        self.holdout: m4.M4Holdout | None = None  # dataset.validation=holdout
        self.forecasts: np.ndarray | None = None
        self.forecast_ids: list[str] = []
        self.forecast_rows: list[int] = []  # which series of the split (rows) the forecasts are of

    def datasets(self) -> Splits:
        root = self.cfg.data.root
        split = m4.load(root, self.pattern.name)
        self.split = split
        self.naive2 = m4.naive2(root, self.pattern.name, split.ids)  # fail early if OWA can't be computed
        t = self.cfg.task
        last = M4LastWindows(split, t.seq_len)
        info = {"enc_in": 1, "series": len(split), "file": str(m4.m4_dir(root))}
        if self.cfg.dataset.validation == "test":
            train = M4TrainWindows(split.train, t.seq_len, t.pred_len, self.pattern.window_sampling_limit)
            log.info("M4 %s: %d series, horizon %d, input %d; validation = the test set (official protocol: early "
                     "stopping sees the test set)", self.pattern.name, len(split), t.pred_len, t.seq_len)
            return Splits(train, last, last, info)
        holdout = self.holdout = m4.hold_out(split)
        train = M4TrainWindows(holdout.training, t.seq_len, t.pred_len, self.pattern.window_sampling_limit)
        val = M4LastWindows(holdout.validation, t.seq_len, rows_key=HOLDOUT_ROWS)
        short = (f"; {len(holdout.too_short)} series too short to hold out {t.pred_len} points and keep "
                 f"{m4.HOLDOUT_MIN_TRAIN} (first: {holdout.too_short[0]}) are not validated and train on their whole "
                 f"training part" if holdout.too_short else "")
        log.info("M4 %s: %d series, horizon %d, input %d; validation = held out of TRAIN (dataset.validation="
                 "holdout): the last %d training points of %d series, sMAPE only%s", self.pattern.name, len(split),
                 t.pred_len, t.seq_len, t.pred_len, len(holdout), short)
        return Splits(train, val, last, info)

    def build_model(self, splits: Splits) -> nn.Module:
        return self.network(1)

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return smape_loss(model(batch["x"]).float(), batch["y"], batch["mask"])

    @torch.inference_mode()
    def evaluation_state(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> dict:
        """This share's forecasts and the rows (series) they are of, and which split they score (the
        test split, or the held-out validation split: their rows key says which)."""
        forecasts, rows, key = [], [], None
        for batch in batches:
            key = HOLDOUT_ROWS if HOLDOUT_ROWS in batch else TEST_ROWS
            forecasts.append(model(batch["x"]).float()[..., 0].cpu())
            rows.append(batch[key].reshape(-1).cpu())
        if key is None:  # a share without batches
            return {}
        return {"forecast": torch.cat(forecasts).double().numpy(), "rows": torch.cat(rows).numpy(), "rows_key": key}

    def metrics_from(self, state: dict) -> dict:
        """Scores of the test split's forecasts (sMAPE, MASE, OWA; also the validation under
        dataset.validation=test), or sMAPE of the held-out validation split's."""
        forecast = state["forecast"]
        rows_scored = state["rows"].tolist()  # all series, or the sample trainer.limit_eval_batches scores
        if state["rows_key"] == HOLDOUT_ROWS:
            truth = self.holdout.validation.test[rows_scored]
            value = m4_metrics.smape(forecast, truth)
            return {"loss": value, "smape": value, "series": len(rows_scored), "seasonal_pattern": self.pattern.name}
        split = self.split
        part = m4.M4Split(split.pattern, [split.ids[i] for i in rows_scored], [split.train[i] for i in rows_scored],
                          split.test[rows_scored])
        scores = m4_metrics.score_pattern(forecast, part, self.naive2[rows_scored])
        self.forecasts, self.forecast_ids, self.forecast_rows = forecast, part.ids, rows_scored
        return {"loss": scores["smape"], "smape": scores["smape"], "mase": scores["mase"], "owa": scores["owa"],
                "series": scores["series"], "seasonal_pattern": self.pattern.name}

    def save_test_outputs(self, run_dir) -> None:
        if self.forecasts is None:
            return
        name = submission_name(len(self.forecast_ids), len(self.split.ids))
        if name != SUBMISSION:
            log.warning("%s: forecasts of the %d of %d series scored (trainer.limit_eval_batches); not a full M4 "
                        "submission, so not written as %s", name, len(self.forecast_ids), len(self.split.ids),
                        SUBMISSION)
        m4_metrics.write_submission(Path(run_dir) / name, self.forecast_ids, self.forecasts)
        self.save_samples(run_dir)

    def save_samples(self, run_dir, limit: int = 4) -> None:
        """test_samples.npz for the report: ``limit`` series spread over those scored (rows 0, n/limit, …),
        each with its input (the last seq_len training points; NaN where the series is shorter, the
        zeros the network saw would read as data), truth and forecast, and ``series`` (their ids)."""
        n, input_len = len(self.forecast_rows), self.cfg.task.seq_len
        picked = sorted({i * n // limit for i in range(limit)}) if n else []
        if not picked:
            return
        rows = [self.forecast_rows[i] for i in picked]
        history = np.full((len(rows), input_len), np.nan, dtype=np.float32)
        for out, row in zip(history, rows):
            tail = self.split.train[row][-input_len:]
            out[input_len - len(tail):] = tail
        buffer = io.BytesIO()
        np.savez_compressed(buffer, columns=np.array(["value"]), series=np.array([self.split.ids[r] for r in rows]),
                            x=history[..., None], y=self.split.test[rows].astype(np.float32)[..., None],
                            pred=self.forecasts[picked].astype(np.float32)[..., None])
        atomic_write_bytes(Path(run_dir) / SAMPLES_FILE, buffer.getvalue())


SAMPLES_FILE = "test_samples.npz"  # the same file and keys as the window tasks' (tasks/base.py: TestSamples)
SUBMISSION = "forecast.csv"  # every series of the pattern, in the competition's format
PARTIAL_SUBMISSION = "forecast_subset.csv"  # the same format, for the series a capped test scored


def submission_name(scored: int, total: int) -> str:
    """forecast.csv only for a whole pattern: a file of some series must not pass for a submission."""
    return SUBMISSION if scored >= total else PARTIAL_SUBMISSION


TASK = ShortTermForecasting

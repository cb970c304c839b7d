"""Loading the official file layouts and ours, and the errors for files that don't fit."""

from __future__ import annotations

import pytest
import torch

import official_layout
from conftest import tiny_model_cfg
from symtime_repro.errors import UserError
from symtime_repro.models import (build_model, load_model_weights, load_pretrained_encoder, read_checkpoint,
                                  save_checkpoint)

SMALL = dict(n_layers=6, d_model=384, n_heads=8, d_ff=384, forward_layers=3)
BASE = dict(n_layers=6, d_model=512, n_heads=8, d_ff=2048, forward_layers=3)


def _pretrained_file(tmp_path, size="SymTime_small", prefix=""):
    state = official_layout.random_state(
        official_layout.section(f"Pre-trained encoder file (models/params/finetuning.pth), {size}"))
    path = tmp_path / "finetuning.pth"
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return path, state


def test_official_pretrained_encoder_loads_every_tensor(tmp_path):
    path, state = _pretrained_file(tmp_path)
    model = build_model("forecast", 7, 96, 96, tiny_model_cfg(**SMALL))
    head_before = model.flatten_head.linear.weight.clone()
    load_pretrained_encoder(model, path)
    loaded = model.time_encoder.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert torch.equal(model.flatten_head.linear.weight, head_before)  # heads stay as initialised


def test_data_parallel_prefix_is_accepted(tmp_path):
    path, state = _pretrained_file(tmp_path, prefix="module.")
    model = build_model("forecast", 7, 96, 96, tiny_model_cfg(**SMALL))
    load_pretrained_encoder(model, path)
    assert torch.equal(model.time_encoder.W_P.weight, state["W_P.weight"])


def test_encoder_of_another_size_names_the_preset_to_use(tmp_path):
    path, _ = _pretrained_file(tmp_path, "SymTime_small")
    model = build_model("forecast", 7, 96, 96, tiny_model_cfg(**BASE))
    with pytest.raises(UserError) as err:
        load_pretrained_encoder(model, path)
    message = str(err.value)
    assert "'cls_token' has shape (1, 1, 384) in the file but (1, 1, 512) in the model" in message
    assert "use model=symtime_small" in message


def test_official_finetuned_long_term_checkpoint_loads(tmp_path):
    state = official_layout.random_state(
        official_layout.section("Fine-tuned full model (checkpoint.pth), task_name=long_term_forecast"))
    path = tmp_path / "checkpoint.pth"
    torch.save(state, path)
    loaded_state, saved_config = read_checkpoint(path)
    assert saved_config is None  # an official file carries no config of ours
    model = build_model("forecast", 7, 96, 96, tiny_model_cfg(**BASE))
    load_model_weights(model, loaded_state, path)
    assert torch.equal(model.flatten_head.linear.weight, state["flatten_head.linear.weight"])
    assert torch.equal(model.time_encoder.layers[5].ff[3].bias, state["time_encoder.layers.5.ff.3.bias"])


def test_decomposition_switch_mismatch_is_explained(tmp_path):
    state = official_layout.random_state(
        official_layout.section("Fine-tuned full model (checkpoint.pth), task_name=long_term_forecast"))
    model = build_model("forecast", 7, 96, 96, tiny_model_cfg(**BASE, use_avg=False))
    with pytest.raises(UserError, match="projection_trend.weight' that this model does not.*model.use_avg"):
        load_model_weights(model, state, "checkpoint.pth")


def test_our_checkpoint_round_trip(tmp_path):
    model = build_model("forecast", 3, 96, 24, tiny_model_cfg())
    optimizer = torch.optim.Adam(model.parameters())
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, optimizer, 4, {"task": {"pred_len": 24}}, {"best_val_loss": 0.5})
    state, config = read_checkpoint(path)
    assert config == {"task": {"pred_len": 24}}
    fresh = build_model("forecast", 3, 96, 24, tiny_model_cfg())
    load_model_weights(fresh, state, path)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_unreadable_and_missing_files_are_user_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(junk)
    with pytest.raises(UserError, match="checkpoint file not found"):
        read_checkpoint(tmp_path / "missing.pth")

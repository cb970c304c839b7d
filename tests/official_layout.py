"""Parse ``fixtures/symtime_checkpoint_keys.txt`` (names and shapes of the official files) and
build state dicts of that exact layout, filled with random values, for loading tests."""

from __future__ import annotations

import re
from pathlib import Path

import torch

KEYS_FILE = Path(__file__).resolve().parent / "fixtures" / "symtime_checkpoint_keys.txt"


def sections() -> dict[str, dict[str, tuple[int, ...]]]:
    """Section title -> {parameter name: shape}, with the 'layers.1 .. 5: same' lines expanded."""
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    current = None
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            out[current] = {}
            continue
        if current is None or not line.strip() or line.startswith("#"):
            continue
        same = re.match(r"^(\S*?)layers\.1 \.\. (?:layers\.)?(\d+):", line)
        if same:
            prefix, last = same.group(1), int(same.group(2))
            layer0 = {k: v for k, v in out[current].items() if k.startswith(f"{prefix}layers.0.")}
            for index in range(1, last + 1):
                for key, shape in layer0.items():
                    out[current][key.replace(f"{prefix}layers.0.", f"{prefix}layers.{index}.", 1)] = shape
            continue
        name, shape = line.split("\t")[:2]
        out[current][name] = tuple(int(n) for n in re.findall(r"\d+", shape))
    return out


def section(startswith: str) -> dict[str, tuple[int, ...]]:
    matches = [title for title in sections() if title.startswith(startswith)]
    assert len(matches) == 1, (startswith, matches)
    return sections()[matches[0]]


def random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of the official layout with plausible random values."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        if key.endswith("cls_mask"):
            state[key] = torch.ones(shape, dtype=torch.bool)
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("sdp_attn.scale"):
            state[key] = torch.tensor(0.125)
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state

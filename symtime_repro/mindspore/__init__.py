"""SymTime's fine-tuning network in MindSpore 2.x, the same computation and parameter names as our
torch network, and the weights of any file the torch side loads.

Separate from the torch path: nothing outside this package imports it, and it runs in its own venv
(``make venv-ms`` makes ``.venv-ms``: MindSpore 2.10 fails to import with numpy 2). torch is installed
there too: the files are read with our torch readers.

API::

    build_network(head, enc_in, seq_len, pred_len, model_cfg, num_classes=None,
                  device_target=None, seed=0) -> SymTimeCell        # head: forecast | reconstruct | classify
    load_weights_file(cell, path) -> "checkpoint" | "pretrained"   # checkpoint.pt / .pth, finetuning.pth
    load_torch_state(cell, state_dict)                             # a whole-network torch state dict
    load_encoder_state(cell, state_dict)                           # a pre-trained encoder's state dict
    copy_from_torch(cell, torch_module)                            # weights of a live torch network
    forward_numpy(cell, x) -> np.ndarray                           # x [batch, seq_len, channels]
    make_optimizer(cell, lr) / make_train_step(cell, loss_fn, optimizer, graph=False, loss_scale=None)
    # symtime_repro.mindspore.bench: what `python -m symtime_repro.bench framework=mindspore` measures

Example (``model_cfg`` is the run's model section: any object with ModelConfig's fields)::

    import mindspore as ms
    from symtime_repro.mindspore import build_network, load_weights_file, forward_numpy

    ms.set_context(device_target="CPU")              # or "Ascend": mint's fused kernels are used
    cell = build_network("forecast", enc_in=7, seq_len=96, pred_len=96, model_cfg=cfg.model)
    load_weights_file(cell, "outputs/.../checkpoint.pt")
    cell.set_train(False)                             # eval: BatchNorm running stats, no dropout
    prediction = forward_numpy(cell, windows)         # [batch, 96, 7] float32 -> [batch, 96, 7]

Choose the device before building: the kernels (portable ``ops`` or Ascend's ``mint`` and flash
attention, see kernels.py) are picked from the device target when the network is built.
"""

from .convert import check_state, copy_from_torch, load_encoder_state, load_torch_state, load_weights_file
from .network import HEADS, SymTimeCell, build_network, forward_numpy, state_names
from .train import make_optimizer, make_train_step

__all__ = [
    "HEADS",
    "SymTimeCell",
    "build_network",
    "check_state",
    "copy_from_torch",
    "forward_numpy",
    "load_encoder_state",
    "load_torch_state",
    "load_weights_file",
    "make_optimizer",
    "make_train_step",
    "state_names",
]

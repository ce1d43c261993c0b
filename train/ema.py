"""EMA teacher updates for `Trainer`: a callback that calls the model's `update_teacher` after each optimizer step.

The teacher lives inside the model (`EATForPreTraining.teacher`), so it is saved in every checkpoint
and restored by `--resume_from_checkpoint`; the decay is a pure function of the optimizer step
count, so a resumed run continues the schedule exactly.
"""

from __future__ import annotations

from torch import nn
from transformers import TrainerCallback


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module under DDP / FSDP (`.module`) and `torch.compile` (`._orig_mod`) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        else:
            return model


class EMATeacherCallback(TrainerCallback):
    """Calls `model.update_teacher(state.global_step)` at the end of every optimizer step.

    `Trainer` runs `on_step_end` after the optimizer and scheduler steps (once per gradient
    accumulation cycle) with `state.global_step` already counting this update, which is the
    update number the EMA schedule expects. The decay used is kept in `last_decay` for logging.
    """

    def __init__(self):
        self.last_decay: float | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise ValueError("EMATeacherCallback needs the model; Trainer passes it to callbacks")
        target = unwrap_model(model)
        if not hasattr(target, "update_teacher"):
            raise TypeError(f"{type(target).__name__} has no update_teacher(num_updates) method")
        self.last_decay = target.update_teacher(state.global_step)
        return control


__all__ = ["EMATeacherCallback", "unwrap_model"]

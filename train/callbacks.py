"""`Trainer` callbacks shared by the training scripts."""

from __future__ import annotations

import logging
import time

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class TimeLimitCallback(TrainerCallback):
    """Stops training after `minutes` of training time, saving and evaluating at the step where it stops.

    Every process stops at the same step: the over-time flag is reduced with MAX across processes, so
    one slow rank cannot leave the others waiting in a collective.
    """

    def __init__(self, minutes: float):
        if minutes <= 0:
            raise ValueError(f"minutes must be positive, got {minutes}")
        self.minutes = float(minutes)
        self.start: float | None = None
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        over = time.monotonic() - self.start > 60.0 * self.minutes
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor(float(over), device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            over = flag.item() > 0
        if over and not control.should_training_stop:
            logger.warning("time limit of %.1f min reached at step %d of %d: stopping", self.minutes,
                           state.global_step, state.max_steps)
            self.stopped_at = state.global_step
            control.should_training_stop = True
            control.should_save = True
            control.should_evaluate = args.eval_strategy != "no"
        return control


__all__ = ["TimeLimitCallback"]

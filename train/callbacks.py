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

    Args:
        minutes: training time after which to stop (> 0).
        check_every: look at the clock only every this many optimizer steps. Under multi-process training
            each check is a collective (a device sync), which fast, many-step runs (EAT pretraining) space out.
    """

    def __init__(self, minutes: float, *, check_every: int = 1):
        if not minutes > 0:
            raise ValueError(f"minutes must be positive, got {minutes}")
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise ValueError(f"check_every must be a positive integer, got {check_every!r}")
        self.minutes = float(minutes)
        self.check_every = check_every
        self.start: float | None = None
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        # global_step is the same on every rank, so all ranks skip (or enter) the collective together
        if state.global_step % self.check_every:
            return control
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


class StepLimitCallback(TrainerCallback):
    """Stops training after `steps` optimizer steps of a longer `max_steps` schedule, saving at that step.

    The learning-rate (and any step-based) schedule keeps the shape of the full `max_steps` run, so a short run
    follows the first part of a long run's trajectory instead of a compressed copy of it. EAT pretraining needs
    this: its loss drops sharply around step 1,200 of a 3,000-step schedule, and a run scheduled over fewer steps
    decays the learning rate before getting there.

    Args:
        steps: optimizer steps after which to stop (> 0); no effect when `max_steps` is not larger.
    """

    def __init__(self, steps: int):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        self.steps = steps
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.steps and state.global_step < state.max_steps and not control.should_training_stop:
            logger.info("step limit reached at step %d of a %d-step schedule: stopping", state.global_step,
                        state.max_steps)
            self.stopped_at = state.global_step
            control.should_training_stop = True
            control.should_save = True
            control.should_evaluate = args.eval_strategy != "no"
        return control


__all__ = ["StepLimitCallback", "TimeLimitCallback"]

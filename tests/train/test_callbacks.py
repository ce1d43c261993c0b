from types import SimpleNamespace

import pytest
from transformers import TrainerControl, TrainerState

from llm_aac.train import callbacks
from llm_aac.train.callbacks import StepLimitCallback, TimeLimitCallback


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(callbacks.time, "monotonic", fake)
    return fake


def run_steps(callback, clock, *, steps, seconds_per_step, eval_strategy="no"):
    """Drive the callback like `Trainer` does; returns the step at which training was told to stop (or None)."""
    args = SimpleNamespace(device="cpu", eval_strategy=eval_strategy)
    state, control = TrainerState(max_steps=steps), TrainerControl()
    callback.on_train_begin(args, state, control)
    for step in range(1, steps + 1):
        clock.now += seconds_per_step
        state.global_step = step
        control = callback.on_step_end(args, state, control)
        if control.should_training_stop:
            return step, control
    return None, control


def test_stops_at_the_first_step_past_the_limit(clock):
    callback = TimeLimitCallback(1.0)  # 60 s, 25 s per step: over after step 3
    stopped, control = run_steps(callback, clock, steps=10, seconds_per_step=25.0, eval_strategy="steps")
    assert stopped == 3 and callback.stopped_at == 3
    assert control.should_save and control.should_evaluate


def test_check_every_spaces_the_clock_checks(clock):
    callback = TimeLimitCallback(1.0, check_every=4)  # over after step 3, first check at step 4
    stopped, control = run_steps(callback, clock, steps=10, seconds_per_step=25.0)
    assert stopped == 4 and callback.stopped_at == 4
    assert control.should_save and not control.should_evaluate  # nothing to evaluate with eval_strategy "no"


def test_no_stop_within_the_limit(clock):
    callback = TimeLimitCallback(10.0, check_every=2)
    stopped, _ = run_steps(callback, clock, steps=10, seconds_per_step=1.0)
    assert stopped is None and callback.stopped_at is None


@pytest.mark.parametrize("minutes", [0, -1.0, float("nan")])
def test_rejects_non_positive_minutes(minutes):
    with pytest.raises(ValueError, match="minutes must be positive"):
        TimeLimitCallback(minutes)


@pytest.mark.parametrize("check_every", [0, -3, 2.5, True])
def test_rejects_bad_check_every(check_every):
    with pytest.raises(ValueError, match="check_every must be a positive integer"):
        TimeLimitCallback(1.0, check_every=check_every)


def test_step_limit_stops_inside_the_longer_schedule(clock):
    callback = StepLimitCallback(4)
    stopped, control = run_steps(callback, clock, steps=10, seconds_per_step=1.0, eval_strategy="steps")
    assert stopped == 4 and callback.stopped_at == 4
    assert control.should_save and control.should_evaluate


def test_step_limit_at_or_past_the_schedule_end_changes_nothing(clock):
    for steps in (10, 12):
        callback = StepLimitCallback(steps)
        stopped, _ = run_steps(callback, clock, steps=10, seconds_per_step=1.0)
        assert stopped is None and callback.stopped_at is None


@pytest.mark.parametrize("steps", [0, -2, 3.0, True])
def test_step_limit_rejects_bad_steps(steps):
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        StepLimitCallback(steps)

"""train/argument_presets.py and train/training_arguments.py: which default wins, and the shared corpus defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from llm_aac.train.argument_presets import parse_with_presets


@dataclass
class _Arguments:
    preset: str = field(default="a")
    steps: int = field(default=1)
    name: str = field(default="dataclass")


PRESETS = {"a": {"steps": 10}, "b": {"steps": 20, "name": "preset b"}}


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], (10, "base")),  # the preset sets steps, base_defaults the name
        (["--preset", "b"], (20, "preset b")),  # a preset's own value beats base_defaults
        (["--preset", "b", "--name", "cli", "--steps", "3"], (3, "cli")),  # the command line beats both
    ],
)
def test_base_defaults_apply_under_every_preset_and_lose_to_the_preset_and_the_command_line(argv, expected):
    (arguments,) = parse_with_presets((_Arguments,), PRESETS, argv, default_preset="a", base_defaults={"name": "base"})
    assert (arguments.steps, arguments.name) == expected


def test_unknown_preset_or_default_names_the_problem():
    with pytest.raises(ValueError, match="unknown --preset 'c'"):
        parse_with_presets((_Arguments,), PRESETS, ["--preset", "c"], default_preset="a")
    with pytest.raises(ValueError, match=r"unknown arguments \['colour'\]"):
        parse_with_presets((_Arguments,), PRESETS, [], default_preset="a", base_defaults={"colour": "red"})


def test_corpus_training_scripts_share_the_defaults_and_keep_their_own():
    from llm_aac.train.finetune_aac import FinetuneTrainingArguments
    from llm_aac.train.train_clap import ClapTrainingArguments
    from llm_aac.train.training_arguments import CorpusTrainingArguments

    shared = dict(remove_unused_columns=False, eval_strategy="steps", eval_on_start=True, prediction_loss_only=True,
                  weight_decay=0.0, max_grad_norm=1.0, save_total_limit=2, ddp_find_unused_parameters=False)
    for arguments_type, own in (
        (FinetuneTrainingArguments, {"output_dir": "runs/aac", "lr_scheduler_type": "linear"}),
        (ClapTrainingArguments, {"output_dir": "runs/clap", "lr_scheduler_type": "cosine"}),
    ):
        assert issubclass(arguments_type, CorpusTrainingArguments)
        fields = arguments_type.__dataclass_fields__
        assert {name: fields[name].default for name in {**shared, **own}} == {**shared, **own}

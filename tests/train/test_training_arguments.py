import pytest
from transformers import HfArgumentParser

from llm_aac.train.finetune_aac import FinetuneTrainingArguments
from llm_aac.train.finetune_eat_classifier import ClassifierTrainingArguments
from llm_aac.train.pretrain_eat import EATPretrainingTrainingArguments
from llm_aac.train.pretrain_text_lm import TextLMTrainingArguments
from llm_aac.train.train_clap import ClapTrainingArguments
from llm_aac.train.training_arguments import SyncFreeTrainingArguments

SCRIPT_ARGUMENTS = (FinetuneTrainingArguments, ClassifierTrainingArguments, EATPretrainingTrainingArguments,
                    TextLMTrainingArguments, ClapTrainingArguments)


@pytest.mark.parametrize("arguments_class", SCRIPT_ARGUMENTS, ids=lambda c: c.__name__)
def test_every_training_script_skips_the_per_step_loss_check_unless_asked(arguments_class, tmp_path):
    assert issubclass(arguments_class, SyncFreeTrainingArguments)
    (default,) = HfArgumentParser(arguments_class).parse_args_into_dataclasses(args=["--output_dir", str(tmp_path)])
    assert default.logging_nan_inf_filter is False
    (asked,) = HfArgumentParser(arguments_class).parse_args_into_dataclasses(
        args=["--output_dir", str(tmp_path), "--logging_nan_inf_filter", "true"])
    assert asked.logging_nan_inf_filter is True

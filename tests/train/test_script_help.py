"""Every training script's `--help` prints its options (argparse formats help strings with %, so a literal percent
sign in one of them breaks the whole listing)."""

import importlib

import pytest

SCRIPTS = ["feature_cache", "finetune_aac", "finetune_eat_classifier", "plot_curves", "pretrain_eat",
           "pretrain_text_lm", "train_clap", "train_tokenizer", "recipes.gpu_finetune_tiny", "recipes.run_ablations",
           "recipes.synthetic_gpu"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_the_options(script, capsys):
    main = importlib.import_module(f"llm_aac.train.{script}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--help" in capsys.readouterr().out

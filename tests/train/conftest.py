"""Shared, session-scoped tiny artefacts for the training tests (each built once, in seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """A tiny Llama + tokenizer pre-trained for a few steps on synthetic captions (`pretrain_text_lm`)."""
    from llm_aac.train import pretrain_text_lm

    output = tmp_path_factory.mktemp("tiny_lm")
    pretrain_text_lm.main([
        "--preset", "tiny", "--synthetic_clips", "80", "--vocab_size", "400", "--block_size", "64",
        "--max_steps", "16", "--per_device_train_batch_size", "8", "--logging_steps", "4", "--eval_steps", "8",
        "--save_steps", "16", "--learning_rate", "5e-3", "--output_dir", str(output),
    ])
    return output


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory):
    """An 8-clip synthetic corpus on disk (`llm-aac synth` layout: train 5, validation / test / compositional 1)."""
    from llm_aac.processing.synthetic import synthesize_corpus

    output = tmp_path_factory.mktemp("corpus") / "synth"
    synthesize_corpus(8, 0, output)
    return output

"""Session-scoped tiny artefacts of the evaluation tests (each built once, in seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory):
    """A 10-clip synthetic corpus on disk (`llm-aac synth` layout): train 5, validation 1, test 2, compositional 2."""
    from llm_aac.processing.synthetic import synthesize_corpus

    output = tmp_path_factory.mktemp("corpus") / "synth"
    synthesize_corpus(10, 0, output, split_fractions={"validation": 0.1, "test": 0.2, "compositional": 0.2})
    return output


@pytest.fixture(scope="session")
def tiny_eat_dir(tmp_path_factory):
    """A tiny random EATModel + fbank feature extractor folder."""
    from classification_fixtures import save_tiny_eat

    return save_tiny_eat(tmp_path_factory.mktemp("eat"))

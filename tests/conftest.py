import os
import sys
from pathlib import Path

# No hub at test time: fail fast instead of retrying each request for ~24 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

# Without a GPU the decoder's Triton kernels run in Triton's interpreter (numpy); it has to be chosen before
# `modeling_llm_aac` defines them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Tiny test models: one thread avoids oversubscription stalls on small CI machines.
torch.set_num_threads(1)

# Where `captioning_test_utils` (the tiny captioner of the model tests) lives; test folders have no packages.
MODEL_TEST_UTILS = str(Path(__file__).parent / "modeling_llm_aac")


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one torch thread, whatever an earlier one (e.g. the demo's `--threads`) set."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_captioner_parts():
    """(model, processor) of `captioning_test_utils.tiny_captioner()`, built once per test module."""
    if MODEL_TEST_UTILS not in sys.path:
        sys.path.insert(0, MODEL_TEST_UTILS)
    from captioning_test_utils import tiny_captioner

    return tiny_captioner()

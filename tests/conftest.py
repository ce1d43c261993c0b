import os

# No hub at test time: fail fast instead of retrying each request for ~24 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Tiny test models: one thread avoids oversubscription stalls on small CI machines.
torch.set_num_threads(1)

"""LLM-AAC: command-line tools and training/eval code around the Hub-facing `modeling_llm_aac`.

`llm_aac.processing`, `llm_aac.train` and `llm_aac.eval` map to the repo folders `processing/`,
`train/` and `eval/` (see pyproject.toml).
"""

__version__ = "0.1.0"

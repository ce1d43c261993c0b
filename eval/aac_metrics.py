"""DCASE audio-captioning metrics (aac-metrics) as a Hugging Face `evaluate` module.

Loaded from its path, so it works offline:

    import evaluate
    metric = evaluate.load("eval/aac_metrics.py", config_name="dcase2024")
    metric.compute(predictions=["a dog barks"], references=[["a dog is barking", "dog barks twice"]])

The config name picks the metric set ("dcase2024" = default, "dcase2023", "all", "fast"); the
scores come from `llm_aac.eval.caption_metrics.compute_caption_metrics`, which scores the whole
set of accumulated predictions in one corpus-level aac-metrics call. Metrics whose runtime is
missing (SPICE's CoreNLP, FENSE's models, Java) are left out of the returned dict and logged with
the command that installs them; `compute(..., return_details=True)` returns them under "skipped".
"""

import datasets
import evaluate

from llm_aac.eval.caption_metrics import METRIC_SETS, compute_caption_metrics

_DESCRIPTION = """\
Audio-captioning metrics as computed by the DCASE challenge, through aac-metrics (Labbé et al.):
BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE, SPIDEr, SPIDEr-FL, FENSE and vocabulary size. Captions
are sanitised and PTB-tokenised as aac-metrics does; blank predictions count as empty captions.
"""

_CITATION = """\
@inproceedings{labbe2023aacmetrics,
  title = {Is my automatic audio captioning system so bad? spider-max: a metric to consider several caption candidates},
  author = {Labb{\\'e}, Etienne and Pellegrini, Thomas and Pinquier, Julien},
  booktitle = {Proceedings of the 8th Detection and Classification of Acoustic Scenes and Events 2023 Workshop (DCASE2023)},
  year = {2023},
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): one generated caption per clip (blank strings are scored as "").
    references (`list` of `list` of `str`): all reference captions of each clip.
    metrics (`str` or `list` of `str`, optional): override the config's metric set or list.
    tokenize (`bool`, optional): PTB tokenisation; default as in the metric set.
    return_details (`bool`, optional): also return "skipped" (metric -> reason and fix),
        "ranking_metric", "num_blank_predictions", "tokenized" and "tokenizer" ("java", "python" (the pure-Python
        copy, where Java is missing) or None).
Returns:
    dict of corpus-level scores by aac-metrics name (`bleu_4`, `meteor`, `cider_d`, `spider_fl`,
    `fense`, `vocab.cands`, ...).
Examples:
    >>> metric = evaluate.load("eval/aac_metrics.py", config_name="fast")
    >>> scores = metric.compute(predictions=["a dog barks"], references=[["a dog barks", "a dog is barking"]])
    >>> round(scores["bleu_1"], 3)
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AacMetrics(evaluate.Metric):
    """`evaluate` wrapper around `compute_caption_metrics`; config name = metric set.

    Extra `evaluate.load` keyword arguments: `cache_path` (aac-metrics cache directory),
    `java_path` (Java executable) and `device` (torch device for FENSE / SPIDEr-FL models).
    """

    def __init__(self, *args, cache_path=None, java_path=None, device="cuda_if_available", **kwargs):
        # Set before the base constructor, which calls _info().
        self._cache_path = cache_path
        self._java_path = java_path
        self._device = device
        super().__init__(*args, **kwargs)

    def _info(self):
        if self.config_name not in ("default", *METRIC_SETS):
            raise ValueError(
                f"unknown config_name {self.config_name!r}; use one of {', '.join(METRIC_SETS)} "
                "(or pass metrics=[...] to compute)"
            )
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            codebase_urls=["https://github.com/Labbeti/aac-metrics"],
            reference_urls=["https://dcase.community/challenge2024/task-automated-audio-captioning"],
        )

    def _compute(self, predictions, references, metrics=None, tokenize=None, return_details=False):
        metric_set = "dcase2024" if self.config_name == "default" else self.config_name
        result = compute_caption_metrics(
            predictions,
            references,
            metrics if metrics is not None else metric_set,
            tokenize=tokenize,
            cache_path=self._cache_path,
            java_path=self._java_path,
            device=self._device,
        )
        output = dict(result.scores)
        if return_details:
            output.update(
                skipped=dict(result.skipped),
                ranking_metric=result.ranking_metric,
                num_blank_predictions=result.num_blank_predictions,
                tokenized=result.tokenized,
                tokenizer=result.tokenizer,
            )
        return output

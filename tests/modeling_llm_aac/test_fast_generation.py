"""FastCaptionGenerator gives generate's tokens and scores (beam search, several beam sizes at once, greedy,
sampling), whatever the chunking; reported log-probabilities equal a teacher-forced forward pass."""

import pytest
import torch
from llm_aac_test_utils import (
    AUDIO_ID, EOS, PAD, TINY_LORA, prompt_batch, random_features, tiny_audio_config, tiny_model, tiny_text_config,
)
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from modeling_llm_aac.configuration_llm_aac import LLMAACConfig
from modeling_llm_aac import fast_generation
from modeling_llm_aac.fast_generation import FastCaptionGenerator, fast_generation_unsupported_reason
from modeling_llm_aac.modeling_llm_aac import LLMAACForConditionalGeneration

FRAMES = [98, 230, 160]


def make_inputs(model, frames=FRAMES, seed=0):
    features, mask = random_features(frames, seed=seed)
    return {**prompt_batch(model.config, frames), "input_features": features, "feature_attention_mask": mask}


def make_model(eos_boost=1.6, lora=None, seed=1):
    model = tiny_model("linear", lora=lora, seed=seed)
    with torch.no_grad():  # captions of varied lengths: finished beams and early stopping get exercised
        model.get_output_embeddings().weight[EOS] *= eos_boost
    return model


def generated(row, length):
    """generate's row without the filling after the hypothesis (beam search fills with `pad_token_id or eos`)."""
    assert all(token in (PAD, EOS) for token in row[length:]), row
    return row[:length]


@pytest.mark.parametrize("num_beams,length_penalty,early_stopping", [(2, 1.0, False), (3, 0.5, True), (4, 1.0, "never")])
def test_beam_search_equals_generate(num_beams, length_penalty, early_stopping):
    model = make_model()
    inputs = make_inputs(model)
    width = inputs["input_ids"].shape[1]
    reference = model.generate(
        **inputs, max_new_tokens=10, num_beams=num_beams, num_return_sequences=num_beams, do_sample=False,
        length_penalty=length_penalty, early_stopping=early_stopping, eos_token_id=EOS, pad_token_id=PAD,
        return_dict_in_generate=True, output_scores=True,
    )
    fast = FastCaptionGenerator(model).beam_search(
        **inputs, beam_sizes=(num_beams,), num_return_sequences=num_beams, max_new_tokens=10,
        length_penalty=length_penalty, early_stopping=early_stopping, eos_token_id=EOS,
    )
    lengths = set()
    for clip in range(len(FRAMES)):
        for rank, hypothesis in enumerate(fast[clip][0]):
            row = reference.sequences[clip * num_beams + rank, width:].tolist()
            assert hypothesis.tokens == generated(row, hypothesis.num_tokens)
            assert hypothesis.score == pytest.approx(float(reference.sequences_scores[clip * num_beams + rank]), abs=1e-5)
            lengths.add(hypothesis.num_tokens)
    assert len(lengths) > 1  # some hypotheses ended with EOS before the limit


def test_all_slam_beam_sizes_in_one_pass_equal_separate_generate_calls():
    model = make_model()
    inputs = make_inputs(model)
    width = inputs["input_ids"].shape[1]
    sizes = (2, 3, 4, 5)
    # Chunks of two clips: the chunking must not change anything either.
    fast = FastCaptionGenerator(model, max_clips_per_chunk=2).beam_search(
        **inputs, beam_sizes=sizes, max_new_tokens=8, eos_token_id=EOS
    )
    for group, size in enumerate(sizes):
        reference = model.generate(
            **inputs, max_new_tokens=8, num_beams=size, do_sample=False, eos_token_id=EOS, pad_token_id=PAD,
            return_dict_in_generate=True, output_scores=True,
        )
        for clip in range(len(FRAMES)):
            best = fast[clip][group][0]
            assert best.tokens == generated(reference.sequences[clip, width:].tolist(), best.num_tokens)
            assert best.score == pytest.approx(float(reference.sequences_scores[clip]), abs=1e-5)


def test_min_new_tokens_and_greedy_equal_generate():
    model = make_model(eos_boost=2.5)
    inputs = make_inputs(model)
    width = inputs["input_ids"].shape[1]
    generator = FastCaptionGenerator(model)
    reference = model.generate(**inputs, max_new_tokens=9, min_new_tokens=6, num_beams=3, do_sample=False,
                               eos_token_id=EOS, pad_token_id=PAD)
    fast = generator.beam_search(**inputs, beam_sizes=(3,), max_new_tokens=9, min_new_tokens=6, eos_token_id=EOS)
    for clip in range(len(FRAMES)):
        best = fast[clip][0][0]
        assert best.num_tokens >= 6 and best.tokens == generated(reference[clip, width:].tolist(), best.num_tokens)

    greedy = model.generate(**inputs, max_new_tokens=9, do_sample=False, eos_token_id=EOS, pad_token_id=PAD)
    fast = generator.sample(**inputs, do_sample=False, max_new_tokens=9, eos_token_id=EOS, pad_token_id=PAD)
    for clip in range(len(FRAMES)):
        assert fast[clip][0].tokens == generated(greedy[clip, width:].tolist(), fast[clip][0].num_tokens)


def test_sampling_draws_what_generate_draws():
    model = make_model(eos_boost=1.0)
    inputs = make_inputs(model)
    width = inputs["input_ids"].shape[1]
    options = dict(do_sample=True, temperature=0.8, top_k=20, top_p=0.9, num_return_sequences=3)
    torch.manual_seed(5)
    reference = model.generate(**inputs, max_new_tokens=4, eos_token_id=EOS, pad_token_id=PAD, **options)
    torch.manual_seed(5)
    fast = FastCaptionGenerator(model).sample(**inputs, max_new_tokens=4, eos_token_id=EOS, pad_token_id=PAD, **options)
    rows = [hyp.tokens for clip in fast for hyp in clip]
    assert rows == [reference[row, width:width + len(tokens)].tolist() for row, tokens in enumerate(rows)]
    assert len({tuple(r) for r in rows}) > 1


def test_reported_log_probabilities_equal_a_teacher_forced_pass():
    model = make_model(lora=TINY_LORA)  # the LoRA adapter must be in the fast path too
    inputs = make_inputs(model, frames=[98, 160])
    hypotheses = FastCaptionGenerator(model).beam_search(
        **inputs, beam_sizes=(2, 3), num_return_sequences=2, max_new_tokens=7, eos_token_id=EOS
    )
    for clip in range(2):
        for group in hypotheses[clip]:
            for hyp in group:
                ids = torch.cat([inputs["input_ids"][clip:clip + 1], torch.tensor([hyp.tokens])], dim=1)
                mask = torch.cat([inputs["attention_mask"][clip:clip + 1], torch.ones(1, hyp.num_tokens, dtype=torch.long)], 1)
                with torch.no_grad():
                    logits = model(input_ids=ids, attention_mask=mask,
                                   input_features=inputs["input_features"][clip:clip + 1],
                                   feature_attention_mask=inputs["feature_attention_mask"][clip:clip + 1]).logits
                log_probs = logits[0, -hyp.num_tokens - 1:-1].float().log_softmax(-1)
                expected = log_probs.gather(1, torch.tensor(hyp.tokens)[:, None]).sum()
                assert hyp.log_prob_sum == pytest.approx(float(expected), abs=1e-4)
                assert hyp.mean_log_prob == pytest.approx(float(expected) / hyp.num_tokens, abs=1e-4)


def test_diverse_groups_spread_over_first_tokens():
    model = make_model(eos_boost=1.0)
    inputs = make_inputs(model, frames=[98])
    generator = FastCaptionGenerator(model)
    plain = generator.beam_search(**inputs, beam_sizes=(2, 2, 2), max_new_tokens=5)
    # Without a penalty the groups are the same search; with a large one no first token repeats.
    assert len({tuple(group[0].tokens) for group in plain[0]}) == 1
    diverse = generator.beam_search(**inputs, beam_sizes=(2, 2, 2), max_new_tokens=5, diversity_penalty=100.0)
    assert len({group[0].tokens[0] for group in diverse[0]}) == 3
    assert diverse[0][0][0].tokens == plain[0][0][0].tokens  # the first group is never penalised


def captioner_with_text_model(seed=3, **text):
    torch.manual_seed(seed)
    config = LLMAACConfig(audio_config=tiny_audio_config(), text_config={**tiny_text_config(), **text},
                          projector_type="linear", projector_hidden_size=48, audio_token_id=AUDIO_ID)
    model = LLMAACForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight[EOS] *= 1.6
    return model


@pytest.mark.parametrize("text", [
    dict(num_attention_heads=4, num_key_value_heads=4),  # one query per key / value head
    dict(model_type="qwen3", num_attention_heads=4, num_key_value_heads=2, head_dim=16),  # q / k norms
], ids=["llama-mha", "qwen3-gqa"])
def test_other_attention_layouts_equal_generate(text):
    model = captioner_with_text_model(**text)
    inputs = make_inputs(model)
    width = inputs["input_ids"].shape[1]
    reference = model.generate(
        **inputs, max_new_tokens=8, num_beams=3, num_return_sequences=3, do_sample=False, eos_token_id=EOS,
        pad_token_id=PAD, return_dict_in_generate=True, output_scores=True,
    )
    fast = FastCaptionGenerator(model).beam_search(**inputs, beam_sizes=(3,), num_return_sequences=3,
                                                    max_new_tokens=8, eos_token_id=EOS)
    for clip in range(len(FRAMES)):
        for rank, hypothesis in enumerate(fast[clip][0]):
            row = reference.sequences[clip * 3 + rank, width:].tolist()
            assert hypothesis.tokens == generated(row, hypothesis.num_tokens)
            assert hypothesis.score == pytest.approx(float(reference.sequences_scores[clip * 3 + rank]), abs=1e-5)


class OperatorLog(TorchDispatchMode):
    """Every aten operator run, with the shape / dtype / strides / offset of each tensor argument and the value of
    every other argument: two equal logs launch the same kernels with the same arguments (what a CUDA graph of
    the step replays)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        described = tuple(
            (tuple(a.shape), a.dtype, a.stride(), a.storage_offset()) if isinstance(a, torch.Tensor) else a
            for a in tree_leaves((args, kwargs))
        )
        self.calls.append((str(func), described))
        return func(*args, **kwargs)


def logged_decode_steps(generator):
    logs = []
    step_function = generator.decoder._decode_step

    def logged(*unused):  # the step as a CUDA graph captures it: the whole key/value buffer attended
        with OperatorLog() as log:
            output = step_function()
        logs.append(log.calls)
        return output

    generator.decoder._decode_step = logged
    return logs


@pytest.mark.parametrize("mode", ["beams", "sample"])
def test_every_decode_step_runs_the_same_operators_on_the_same_shapes(mode):
    model = make_model()
    inputs = make_inputs(model, frames=[98, 160])
    generator = FastCaptionGenerator(model)
    logs = logged_decode_steps(generator)
    lengths = dict(max_new_tokens=6, min_new_tokens=6, eos_token_id=EOS)
    if mode == "beams":
        generator.beam_search(**inputs, beam_sizes=(2, 3), **lengths)
    else:
        generator.sample(**inputs, num_return_sequences=2, pad_token_id=PAD, **lengths)
    assert len(logs) == 5  # steps 0..4 are fed back (the last token is not)
    assert len(logs[0]) > 20 and all(log == logs[0] for log in logs[1:])


def test_chunks_with_prompts_of_at_least_half_the_width_share_one_buffer_and_the_call_frees_it():
    model = make_model()
    # Prompt widths 12, 30, 22, 27, 20 tokens, chunks of at most two clips: (30, 27) and (22, 20) in one buffer
    # 30 tokens wide, then (12) in its own (less than half of 30).
    inputs = make_inputs(model, frames=[50, 230, 160, 200, 130])
    generator = FastCaptionGenerator(model, max_clips_per_chunk=2)
    decoder, buffers = generator.decoder, []
    begin = decoder.begin

    def recording_begin(*args):
        begin(*args)
        buffers.append((decoder.cache.data_ptr(), decoder.shape[:2]))

    decoder.begin = recording_begin
    options = dict(beam_sizes=(2, 3), num_return_sequences=2, max_new_tokens=6, eos_token_id=EOS)
    together = generator.beam_search(**inputs, **options)
    assert [shape for _, shape in buffers] == [(2, 30), (2, 30), (1, 12)] and buffers[0][0] == buffers[1][0]
    assert decoder.cache is None and decoder.shape is None
    alone = [FastCaptionGenerator(model).beam_search(**{k: v[i:i + 1] for k, v in inputs.items()}, **options)[0]
             for i in range(5)]
    for ours, reference in zip(together, alone):
        assert [[h.tokens for h in g] for g in ours] == [[h.tokens for h in g] for g in reference]
        assert [h.score for g in ours for h in g] == pytest.approx([h.score for g in reference for h in g], abs=1e-5)


class ReplayByRerunning:
    """Stands in for a CUDA graph on the CPU: 'capturing' runs the warm-up steps and the step once and keeps its
    logits tensor as the static output; 'replaying' runs the step again into that same tensor. So the generator
    sees what a real graph gives it (one output buffer overwritten at every step, inputs read from the static
    buffers, warm-up runs before the capture), apart from the frozen kernels, which the operator-log test covers."""

    def __init__(self, decoder):
        self.decoder, self.captures, self.replays = decoder, [], 0
        decoder._graphs_enabled = lambda: decoder.use_cuda_graphs and decoder.graph_failure is None
        decoder._capture_graph = self.capture

    def capture(self):
        for _ in range(2):  # the warm-up runs of the real capture
            self.decoder._decode_step()
        logits = self.decoder._decode_step()
        self.captures.append(self.decoder.shape)
        graph = self

        class Graph:
            def replay(self):
                graph.replays += 1
                logits.copy_(graph.decoder._decode_step())

        return Graph(), logits


def all_results(generator, inputs, **options):
    beams = generator.beam_search(**inputs, beam_sizes=(2, 3), num_return_sequences=2, max_new_tokens=6,
                                  eos_token_id=EOS, **options)
    greedy = generator.sample(**inputs, do_sample=False, num_return_sequences=2, max_new_tokens=6,
                              eos_token_id=EOS, pad_token_id=PAD)
    return [[(h.tokens, h.log_prob_sum) for group in clip for h in group] for clip in beams] + \
        [[(h.tokens, h.log_prob_sum) for h in clip] for clip in greedy]


def assert_same_results(results, expected):
    """Same tokens; log-probabilities within float32 rounding (a captured step attends over the whole key/value
    buffer, an eager one over the entries written so far: the same masked sum in another order)."""
    assert [[tokens for tokens, _ in clip] for clip in results] == [[tokens for tokens, _ in clip] for clip in expected]
    assert [s for clip in results for _, s in clip] == pytest.approx([s for clip in expected for _, s in clip], abs=1e-5)


def test_graph_replays_give_the_eager_results_with_one_capture_per_chunk_shape():
    model = make_model()
    inputs = make_inputs(model, frames=[98, 98, 98])  # chunks of 2 and 1 clips: two shapes per call
    eager = all_results(FastCaptionGenerator(model, max_clips_per_chunk=2), inputs)
    generator = FastCaptionGenerator(model, max_clips_per_chunk=2, cuda_graphs=True)
    graphs = ReplayByRerunning(generator.decoder)
    steps, step = [], generator.decoder.step
    generator.decoder.step = lambda *args, **kwargs: steps.append(args[1]) or step(*args, **kwargs)
    assert_same_results(all_results(generator, inputs), eager)
    # beam search: shapes (2 clips, 5 rows) and (1 clip, 5 rows); greedy: (2, 2) and (1, 2); nothing kept after
    assert [shape[0] * shape[2] for shape in graphs.captures] == [10, 5, 4, 2]
    assert graphs.replays == len(steps) and steps.count(0) == 4 and max(steps) > 0
    assert generator.decoder.graph is None and generator.decoder.cache is None


def test_cuda_graphs_fall_back_to_eager_steps():
    model = make_model()
    inputs = make_inputs(model, frames=[98, 160])
    eager = all_results(FastCaptionGenerator(model), inputs)
    on_cpu = FastCaptionGenerator(model, cuda_graphs=True)  # no CUDA device: the option is ignored
    assert on_cpu.cuda_graphs and all_results(on_cpu, inputs) == eager

    failing = FastCaptionGenerator(model, cuda_graphs=True)
    failing.decoder._graphs_enabled = lambda: failing.decoder.graph_failure is None

    def capture():
        raise RuntimeError("operation not permitted when stream is capturing")

    failing.decoder._capture_graph = capture
    with pytest.warns(RuntimeWarning, match="could not be captured"):
        assert all_results(failing, inputs) == eager
    assert "not permitted" in failing.decoder.graph_failure
    with pytest.raises(TypeError, match="cuda_graphs"):
        FastCaptionGenerator(model, cuda_graphs="yes")


def test_default_budget_counts_the_allocators_unused_cache_as_free(monkeypatch):
    generator = FastCaptionGenerator(make_model())
    gib = 2**30
    monkeypatch.setattr(generator.decoder, "device", torch.device("cuda", 0))  # only the budget looks at it
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 30 * gib)  # an earlier call's buffers
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 20 * gib)
    assert generator._budget() == int(0.6 * 20 * gib)
    generator.kv_cache_bytes = 5 * gib
    assert generator._budget() == 5 * gib


def test_unsupported_models_and_bad_inputs_raise_clear_errors():
    from transformers import GPT2Config

    model = make_model()
    assert fast_generation_unsupported_reason(model) is None
    gpt2 = tiny_model("linear", seed=0)
    gpt2.get_base_language_model().config.model_type = "gpt2"  # pretend: the layout check names the type
    assert "gpt2" in fast_generation_unsupported_reason(gpt2)
    with pytest.raises(ValueError, match="not available"):
        FastCaptionGenerator(gpt2)
    assert GPT2Config  # transformers still has the class the message refers to

    generator = FastCaptionGenerator(model)
    inputs = make_inputs(model, frames=[98, 230])
    right = prompt_batch(model.config, [98, 230], padding_side="right")
    with pytest.raises(ValueError, match="left-padded"):
        generator.beam_search(**{**inputs, **right}, max_new_tokens=3)
    with pytest.raises(ValueError, match="num_return_sequences"):
        generator.beam_search(**inputs, beam_sizes=(2, 3), num_return_sequences=3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generator.sample(**inputs, max_new_tokens=0)
    with pytest.raises(ValueError, match="input_features"):
        generator.beam_search(**{k: v for k, v in inputs.items() if k != "input_features"}, max_new_tokens=3)


def test_unaligned_vocabulary_uses_a_padded_output_projection_with_the_same_results(monkeypatch):
    model = make_model()
    inputs = make_inputs(model, frames=[98, 160])
    unpadded = all_results(FastCaptionGenerator(model), inputs)
    # The tiny vocabulary (64) is aligned; an alignment of 40 pads it to 80 rows.
    monkeypatch.setattr(fast_generation, "_HEAD_ALIGNMENT", 40)
    generator = FastCaptionGenerator(model)
    padded_rows, logits = [], generator.decoder._logits
    generator.decoder._logits = lambda hidden: padded_rows.append(generator.decoder.padded_head_weight.shape[0]) \
        or logits(hidden)
    padded = all_results(generator, inputs)
    assert set(padded_rows) == {80}
    assert_same_results(padded, unpadded)
    assert generator.decoder.padded_head_weight is None  # dropped with the call's buffers


def test_rows_with_the_same_path_are_computed_once_with_the_same_results():
    model = make_model()
    inputs = make_inputs(model, frames=[98, 160])
    options = dict(beam_sizes=(2, 3, 4), num_return_sequences=2, max_new_tokens=6, eos_token_id=EOS)
    separate = FastCaptionGenerator(model)
    separate.decoder.merge_repeated_paths = False
    expected = separate.beam_search(**inputs, **options)

    merged = FastCaptionGenerator(model)
    distinct_paths, owners_of = [], merged.decoder._entry_owners

    def counting(merge):
        owners = owners_of(merge)
        distinct_paths.append(int((owners == merged.decoder.row_range).sum()) if merge else None)
        return owners

    merged.decoder._entry_owners = counting
    results = merged.beam_search(**inputs, **options)
    assert_same_results([[(h.tokens, h.log_prob_sum) for g in clip for h in g] for clip in results],
                        [[(h.tokens, h.log_prob_sum) for g in clip for h in g] for clip in expected])
    # Step 0: the three searches start from the same distribution, so their first tokens are the 4 best of the
    # clip (2 clips x 9 rows -> 8 distinct paths); later steps share fewer.
    assert distinct_paths[0] == 8 and all(count <= 18 for count in distinct_paths)
    assert sum(distinct_paths) < 18 * len(distinct_paths)

    # Greedy rows of a clip are one path: one row per clip is computed.
    distinct_paths.clear()
    merged.sample(**inputs, do_sample=False, num_return_sequences=3, max_new_tokens=6, eos_token_id=EOS,
                  pad_token_id=PAD)
    assert distinct_paths and set(distinct_paths) == {2}

import json
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoProcessor, AutoTokenizer

import modeling_llm_aac  # noqa: F401  (Auto registrations)
from llm_aac.train import finetune_aac
from llm_aac.train.caption_data import CaptionBatchCollator, CaptionPairs, ClipReferences, MismatchedAudioPairs
from llm_aac.train.caption_trainer import TRAINABLE_WEIGHTS_NAME
from modeling_llm_aac import EATConfig, LLMAACFeatureExtractor, LLMAACForConditionalGeneration, LLMAACProcessor

TINY = ["--preset", "tiny", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
        "--generation_max_new_tokens", "12", "--logging_steps", "2", "--synthesis_workers", "1"]


def projector_weights(folder) -> dict[str, torch.Tensor]:
    state = load_file(os.path.join(folder, "model.safetensors"))
    return {k: v for k, v in state.items() if k.startswith("projector.")}


@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory, tiny_lm_dir):
    """projector (4 steps) then lora (6 steps) on 6 synthetic clips rendered in memory (first 4 s of each),
    3 validation clips."""
    output = tmp_path_factory.mktemp("aac") / "run"
    finetune_aac.main(TINY + [
        "--language_model", str(tiny_lm_dir), "--synthetic_clips", "6", "--synthetic_eval_clips", "3",
        "--stage", "both", "--projector_max_steps", "4", "--lora_max_steps", "6", "--learning_rate", "5e-3",
        "--eval_steps", "3", "--save_steps", "3", "--max_frames", "400", "--output_dir", str(output),
    ])
    return output


def test_two_stages_learn_and_log_caption_metrics(two_stage_run):
    summary = json.loads((two_stage_run / "summary.json").read_text())
    evaluations = summary["evaluations"]
    stages = [e["stage"] for e in evaluations]
    assert stages.count("projector") == 3 and stages.count("lora") == 3  # steps 0, 3, 4 and 0, 3, 6
    for entry in evaluations:
        for key in ("eval_loss", "eval_mismatched_audio_loss", "eval_audio_gain", "eval_cider_d", "eval_bleu_4",
                    "eval_rouge_l", "eval_blank_captions"):
            assert key in entry and np.isfinite(entry[key]), (key, entry)
        assert entry["eval_audio_gain"] == pytest.approx(entry["eval_mismatched_audio_loss"] - entry["eval_loss"])
    # steps continue across stages: lora's step 0 is projector's last step
    assert [e["step"] for e in evaluations] == [0, 3, 4, 4, 7, 10]
    assert evaluations[-1]["eval_loss"] < evaluations[0]["eval_loss"], evaluations
    lora = [e for e in evaluations if e["stage"] == "lora"]
    assert lora[-1]["eval_loss"] < lora[0]["eval_loss"], lora
    history = json.loads((two_stage_run / "log_history.json").read_text())
    losses = [e["loss"] for e in history if "loss" in e]
    assert len(losses) == 5 and all(np.isfinite(losses)), losses  # logged every 2 steps over 10 steps
    assert summary["stages"]["lora"]["parameters"]["trainable"] < summary["stages"]["lora"]["parameters"]["total"]
    assert (two_stage_run / "curves.png").stat().st_size > 0
    predictions = json.loads((two_stage_run / "lora" / "predictions" / "step-6.json").read_text())
    assert len(predictions["captions"]) == 3 and len(predictions["captions"][0]["references"]) == 5
    assert predictions["scores"]["eval_cider_d"] == lora[-1]["eval_cider_d"]


def test_checkpoints_hold_only_trained_parameters(two_stage_run):
    checkpoint = two_stage_run / "lora" / "checkpoint-6"
    assert (checkpoint / TRAINABLE_WEIGHTS_NAME).is_file()
    assert not (checkpoint / "model.safetensors").exists()
    names = set(load_file(checkpoint / TRAINABLE_WEIGHTS_NAME))
    assert any("lora_A" in n for n in names) and any(n.startswith("projector.") for n in names)
    assert not any("base_layer" in n or "embed_tokens" in n for n in names)


def test_saved_captioner_reloads_and_captions_raw_audio(two_stage_run):
    model = AutoModel.from_pretrained(two_stage_run).eval()
    processor = AutoProcessor.from_pretrained(two_stage_run)
    assert isinstance(model, LLMAACForConditionalGeneration) and model.has_lora
    # the projector stage's own folder is a complete captioner too (no adapter)
    assert not AutoModel.from_pretrained(two_stage_run / "projector" / "captioner").has_lora
    audio = [np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32),
             np.random.default_rng(1).normal(0, 0.1, 16000 * 7).astype(np.float32)]
    inputs = processor(audio, sampling_rate=16000)
    with torch.no_grad():
        sequences = model.generate(**inputs, max_new_tokens=8, num_beams=2, do_sample=False)
    captions = processor.batch_decode(sequences, prompt_length=inputs["input_ids"].shape[1])
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


def test_resume_continues_to_the_same_weights(tmp_path, tiny_lm_dir, tiny_corpus_dir):
    """A corpus on disk (features extracted on the fly); an interrupted run resumed from its checkpoint ends
    with exactly the weights of the uninterrupted run."""
    args = TINY + [
        "--language_model", str(tiny_lm_dir), "--dataset_path", str(tiny_corpus_dir), "--train_split", "train",
        "--eval_split", "validation", "--stage", "projector", "--max_steps", "4", "--save_steps", "2",
        "--eval_strategy", "no", "--eval_on_start", "false", "--save_total_limit", "3", "--logging_steps", "1",
        "--max_frames", "600",
    ]
    full, interrupted = tmp_path / "full", tmp_path / "interrupted"
    finetune_aac.main(args + ["--output_dir", str(full)])
    shutil.copytree(full, interrupted)
    # as if killed right after saving checkpoint-2
    shutil.rmtree(interrupted / "projector" / "checkpoint-4")
    shutil.rmtree(interrupted / "projector" / "captioner")
    os.remove(interrupted / "projector" / "stage_complete.json")
    kept = interrupted / "projector" / "checkpoint-2" / TRAINABLE_WEIGHTS_NAME
    kept_mtime = kept.stat().st_mtime_ns
    finetune_aac.main(args + ["--output_dir", str(interrupted), "--resume_from_checkpoint", "true"])

    assert kept.stat().st_mtime_ns == kept_mtime  # resumed from checkpoint-2, not retrained (which rewrites it)
    assert (interrupted / "projector" / "checkpoint-4").is_dir()
    history = json.loads((interrupted / "projector" / "log_history.json").read_text())
    full_history = json.loads((full / "projector" / "log_history.json").read_text())
    assert [(e["step"], e["loss"]) for e in history if "loss" in e] == [
        (e["step"], e["loss"]) for e in full_history if "loss" in e]
    expected = projector_weights(full / "projector" / "captioner")
    resumed = projector_weights(interrupted / "projector" / "captioner")
    assert expected.keys() == resumed.keys() and expected
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=0)
    # a finished stage is skipped on resume
    finetune_aac.main(args + ["--output_dir", str(interrupted), "--resume_from_checkpoint", "true"])
    again = json.loads((interrupted / "projector" / "log_history.json").read_text())
    assert again == history


@pytest.fixture(scope="module")
def processor(tiny_lm_dir):
    from modeling_llm_aac import LLMAACConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    config = LLMAACConfig(audio_config=EATConfig.tiny(max_length=768), text_config={"model_type": "llama"})
    return LLMAACProcessor(LLMAACFeatureExtractor(), tokenizer, audio_token_settings=config)


def test_collator_lays_out_inputs_exactly_like_the_processor(processor):
    rng = np.random.default_rng(0)
    audio = [rng.normal(0, 0.1, 21000).astype(np.float32), rng.normal(0, 0.1, 52000).astype(np.float32)]
    captions = ["a dog barks twice", "rain falls on a metal roof and a bell rings"]
    collator = CaptionBatchCollator(processor)
    rows = [{"audio": {"array": a, "sampling_rate": 16000}} for a in audio]

    expected = processor(audio, text=captions, sampling_rate=16000)
    batch = collator([{"row": row, "caption": c} for row, c in zip(rows, captions)])
    for key in ("input_ids", "attention_mask", "labels", "feature_attention_mask"):
        assert torch.equal(batch[key], expected[key]), key
    torch.testing.assert_close(batch["input_features"], expected["input_features"])
    caption_ids = processor.tokenizer(captions[0], add_special_tokens=False)["input_ids"]
    assert batch["labels"][0][batch["labels"][0] != -100].tolist() == caption_ids + [processor.tokenizer.eos_token_id]

    expected = processor(audio, sampling_rate=16000)  # generation: prompt only, left padding
    batch = collator([{"row": row} for row in rows])
    assert "labels" not in batch
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(batch[key], expected[key]), key
    with pytest.raises(ValueError, match="mixes training items"):
        collator([{"row": rows[0], "caption": "x"}, {"row": rows[1]}])


def test_pairs_expand_every_reference():
    table = [{"captions": ["a", "b"]}, {"captions": []}, {"captions": ["c", " ", None]}, {"captions": ["d"]}]
    pairs = CaptionPairs([table])
    assert [(item["row"] is table[i], item["caption"]) for i, item in zip([0, 0, 2, 3], pairs)] == [
        (True, "a"), (True, "b"), (True, "c"), (True, "d")]
    assert [p["caption"] for p in CaptionPairs([table], max_clips=2)] == ["a", "b", "c"]
    clips = ClipReferences(table, max_clips=2)
    assert clips.references == [["a", "b"], ["c"]] and clips[1]["row"] is table[2]
    with pytest.raises(ValueError, match="no \\(clip, caption\\) pair"):
        CaptionPairs([[{"captions": []}]])
    with pytest.raises(ValueError, match="has no 'captions'"):
        CaptionPairs([[{"audio": None}]])


def test_mismatched_audio_pairs_give_each_caption_the_next_clips_audio():
    tables = [[{"captions": ["a", "b"], "id": 0}, {"captions": [], "id": 1}, {"captions": ["c"], "id": 2},
               {"captions": ["d"], "id": 3}],
              [{"captions": ["e"], "id": 4}, {"captions": ["f"], "id": 5}]]
    pairs = MismatchedAudioPairs(tables)
    true_pairs = CaptionPairs(tables)
    assert len(pairs) == len(true_pairs)
    assert [(p["caption"], p["row"]["id"]) for p in pairs] == [
        ("a", 2), ("b", 2), ("c", 3), ("d", 0), ("e", 5), ("f", 4)]  # cyclic within each table, empty clips skipped
    assert [p["caption"] for p in MismatchedAudioPairs(tables[:1], max_clips=2)] == ["a", "b", "c"]
    assert [p["row"]["id"] for p in MismatchedAudioPairs(tables[:1], max_clips=2)] == [2, 2, 0]
    with pytest.raises(ValueError, match="needs? at least 2"):
        MismatchedAudioPairs([[{"captions": ["a"]}, {"captions": []}]])


def test_audio_gain_is_zero_when_the_mismatched_set_is_the_true_one(tmp_path, tiny_lm_dir):
    """The mismatched-audio loss runs through the very loop of the true loss: same pairs, same number."""
    from transformers import TrainingArguments

    from llm_aac.train.caption_data import synthetic_clip_table
    from llm_aac.train.caption_trainer import CaptionTrainer

    model, processor = finetune_aac.build_captioner(
        finetune_aac.ModelArguments(language_model=str(tiny_lm_dir), projector_hidden_size=16),
        LLMAACFeatureExtractor(feature_type="fbank"), [], with_lora=False,
    )
    table = synthetic_clip_table(processor.feature_extractor, 2, split="validation", num_workers=1, max_frames=160)
    pairs = CaptionPairs([table])
    trainer = CaptionTrainer(
        model=model, args=TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=3, report_to="none",
                                            remove_unused_columns=False, use_cpu=True),
        eval_dataset=pairs, data_collator=CaptionBatchCollator(processor), mismatched_eval_dataset=pairs,
    )
    metrics = trainer.evaluate()
    assert metrics["eval_mismatched_audio_loss"] == metrics["eval_loss"] and metrics["eval_audio_gain"] == 0.0
    trainer.mismatched_eval_dataset = MismatchedAudioPairs([table])
    metrics = trainer.evaluate()
    assert metrics["eval_audio_gain"] != 0.0
    assert "eval_mismatched_audio_loss" not in trainer.evaluate(eval_dataset=pairs)  # only for the validation set


def test_encoder_learning_rate_puts_the_encoder_in_its_own_groups(tmp_path, tiny_lm_dir):
    from transformers import TrainingArguments

    from llm_aac.train.caption_trainer import CaptionTrainer

    model, _ = finetune_aac.build_captioner(
        finetune_aac.ModelArguments(language_model=str(tiny_lm_dir), projector_hidden_size=16),
        LLMAACFeatureExtractor(feature_type="fbank"), [], with_lora=True,
    )
    for parameter in model.encoder.parameters():
        parameter.requires_grad_(True)
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.1, report_to="none",
                             use_cpu=True, lr_scheduler_type="linear", warmup_steps=0)
    trainer = CaptionTrainer(model=model, args=args, encoder_learning_rate=1e-5)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    encoder = {id(p) for p in model.encoder.parameters()}
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = trainer.optimizer.param_groups
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in trained)  # each once
    for group in groups:
        in_encoder = {id(p) in encoder for p in group["params"]}
        assert len(in_encoder) == 1 and group["lr"] == (1e-5 if in_encoder.pop() else 1e-3)
    assert {g["weight_decay"] for g in groups} == {0.0, 0.1} and len(groups) == 4
    trainer.lr_scheduler.step()  # the schedule scales every group from its own peak
    assert sorted({g["lr"] for g in groups}) == pytest.approx([0.9e-5, 0.9e-3])
    with pytest.raises(ValueError, match="encoder_learning_rate must be positive"):
        CaptionTrainer(model=model, args=args, encoder_learning_rate=0.0)


def test_adding_lora_keeps_the_model_and_trains_only_adapter_and_projector(tiny_lm_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = LLMAACForConditionalGeneration.from_pretrained_parts(
        encoder=EATConfig.tiny(max_length=768), language_model=str(tiny_lm_dir), tokenizer=tokenizer,
        projector_options={"projector_hidden_size": 32},
    )
    model_args = finetune_aac.ModelArguments(lora_r=4, lora_alpha=8, lora_dropout=0.0)
    features = torch.randn(2, 304, 128)
    mask = torch.ones(2, 304, dtype=torch.long)
    ids = torch.tensor([[1] + [model.config.audio_token_id] * model.config.num_audio_tokens(304) + [7, 8]] * 2)
    with torch.no_grad():
        before = model(input_ids=ids, input_features=features, feature_attention_mask=mask).logits
    with_lora = finetune_aac.prepare_stage_model("lora", model, model_args).eval()
    with torch.no_grad():
        after = with_lora(input_ids=ids, input_features=features, feature_attention_mask=mask).logits
    torch.testing.assert_close(after, before)
    trained = {n for n, p in with_lora.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n or n.startswith("projector.") for n in trained)
    assert all(p.dtype == torch.float32 for p in with_lora.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="already carries a LoRA adapter"):
        finetune_aac.prepare_stage_model("projector", with_lora, model_args)


def test_all_linear_lora_adapts_every_linear_layer_but_the_head(tiny_lm_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = LLMAACForConditionalGeneration.from_pretrained_parts(
        encoder=EATConfig.tiny(max_length=768), language_model=str(tiny_lm_dir), tokenizer=tokenizer,
        projector_options={"projector_hidden_size": 16},
    )
    model_args = finetune_aac.ModelArguments(lora_r=2, lora_alpha=4, lora_target_modules="all-linear")
    model = finetune_aac.prepare_stage_model("lora", model, model_args)
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if ".lora_A" in n}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    model.save_pretrained(tmp_path / "captioner")
    reloaded = LLMAACForConditionalGeneration.from_pretrained(tmp_path / "captioner")
    assert reloaded.config.lora["target_modules"] == "all-linear"
    assert {n for n, p in reloaded.named_parameters() if p.requires_grad} == {
        n for n, p in model.named_parameters() if p.requires_grad}
    with pytest.raises(ValueError, match="already names every linear layer"):
        finetune_aac.lora_settings(finetune_aac.ModelArguments(lora_target_modules="all-linear,q_proj"))


def test_scratch_encoder_has_new_weights_and_a_frozen_one_no_gradient(tmp_path, tiny_lm_dir):
    from modeling_llm_aac import EATModel

    eat_dir = tmp_path / "eat"
    trained = EATModel(EATConfig.tiny(max_length=96, num_mel_bins=64))
    with torch.no_grad():  # "pretrained": every parameter away from any initialisation (LayerNorm ones, zero biases)
        for parameter in trained.parameters():
            parameter.add_(0.5)
    trained.save_pretrained(eat_dir)
    extractor = LLMAACFeatureExtractor(feature_type="cwt")
    extractor.save_pretrained(eat_dir)
    pretrained = EATModel.from_pretrained(eat_dir).state_dict()

    def build(**kwargs):
        model_args = finetune_aac.ModelArguments(encoder_path=str(eat_dir), language_model=str(tiny_lm_dir),
                                                 projector_hidden_size=16, **kwargs)
        return finetune_aac.build_captioner(model_args, extractor, [], with_lora=False)[0]

    loaded = build().encoder.state_dict()
    scratch = build(encoder_init="scratch").encoder
    assert all(torch.equal(loaded[k], pretrained[k]) for k in pretrained)
    assert scratch.config.to_diff_dict() == EATConfig.from_pretrained(eat_dir).to_diff_dict()
    changed = {k for k in pretrained if not torch.equal(scratch.state_dict()[k], pretrained[k])}
    assert changed == {name for name, _ in trained.named_parameters()}  # fixed position tables stay as they are

    for frozen in (True, False):
        model = build(freeze_encoder=frozen)
        model.train()
        features = torch.randn(2, 96, 64)
        ids = torch.tensor([[1] + [model.config.audio_token_id] * model.config.num_audio_tokens(96) + [7, 8]] * 2)
        model(input_ids=ids, input_features=features, feature_attention_mask=torch.ones(2, 96, dtype=torch.long),
              labels=ids).loss.backward()
        encoder_grads = [p.grad for p in model.encoder.parameters()]
        assert all(g is None for g in encoder_grads) == frozen
        assert all(p.grad is not None for p in model.projector.parameters())

    for argv, message in ((["--encoder_init", "scratch"], "takes the architecture of --encoder_path"),
                          (["--encoder_init", "random", "--encoder_path", str(eat_dir)], "--encoder_init must be one")):
        with pytest.raises(ValueError, match=message):
            finetune_aac.main(argv + ["--synthetic_clips", "2", "--synthetic_eval_clips", "1", "--max_steps", "1",
                                      "--output_dir", str(tmp_path / "bad")])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--stage", "everything", "--synthetic_clips", "2"], "--stage must be one of"),
        ([], "give exactly one training input"),
        (["--synthetic_clips", "2", "--feature_type", "mfcc"], "--feature_type must be one of"),
        (["--synthetic_clips", "2", "--eval_metrics", "bogus"], "unknown metric"),
        (["--synthetic_clips", "2", "--encoder_learning_rate", "-1"], "--encoder_learning_rate must be >= 0"),
    ],
)
def test_bad_arguments_raise_clear_errors(tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        finetune_aac.main(argv + ["--output_dir", str(tmp_path), "--synthetic_eval_clips", "1"]
                          + (["--max_steps", "1"] if argv else []))


def test_precomputed_features_train_and_bring_their_statistics(tmp_path, tiny_lm_dir, tiny_corpus_dir):
    """`llm-aac precompute` outputs (one folder per split): raw features are read instead of audio, and the
    measured per-bin statistics become the captioner's normalisation."""
    from llm_aac.processing.loaders import load_aac_dataset
    from llm_aac.processing.precompute import precompute_features

    features = tmp_path / "features"
    precompute_features(load_aac_dataset(tiny_corpus_dir, "train"), LLMAACFeatureExtractor(), features / "train",
                        keep_audio=False, progress=False)
    output = tmp_path / "run"
    with pytest.raises(ValueError, match="caption metrics need at least 2"):  # the corpus' 1 validation clip
        finetune_aac.main(TINY + ["--language_model", str(tiny_lm_dir), "--dataset_path", str(tiny_corpus_dir),
                                  "--max_steps", "1", "--output_dir", str(output)])
    finetune_aac.main(TINY + [
        "--language_model", str(tiny_lm_dir), "--dataset_path", str(features), "--eval_split", "train",
        "--max_eval_clips", "2", "--stage", "projector",
        "--max_steps", "2", "--eval_steps", "2", "--max_frames", "300", "--output_dir", str(output),
    ])
    processor = AutoProcessor.from_pretrained(output)
    measured = LLMAACFeatureExtractor.from_pretrained(features / "train")
    assert isinstance(processor.feature_extractor.feature_mean, list)
    assert processor.feature_extractor.feature_mean == measured.feature_mean
    summary = json.loads((output / "summary.json").read_text())
    assert [e["step"] for e in summary["evaluations"]] == [0, 2]

    other = tmp_path / "cwt"
    precompute_features(load_aac_dataset(tiny_corpus_dir, "validation"), LLMAACFeatureExtractor(feature_type="cwt"),
                        other / "validation", keep_audio=False, progress=False)
    with pytest.raises(ValueError, match="other extractor settings"):
        finetune_aac.main(TINY + [
            "--language_model", str(tiny_lm_dir), "--dataset_path", str(features), "--eval_dataset_path", str(other),
            "--max_steps", "1", "--output_dir", str(tmp_path / "bad"),
        ])


def test_raw_feature_settings_ignore_where_remote_code_lives():
    """A saved extractor carries `auto_map`; that must not make precomputed features look incompatible."""
    from llm_aac.train.finetune_aac import _raw_feature_settings
    from modeling_llm_aac import LLMAACFeatureExtractor

    fresh = LLMAACFeatureExtractor(feature_type="cwt")
    saved = LLMAACFeatureExtractor(feature_type="cwt")
    saved.auto_map = {"AutoFeatureExtractor": "feature_extraction_llm_aac.LLMAACFeatureExtractor"}
    assert _raw_feature_settings(saved) == _raw_feature_settings(fresh)
    assert _raw_feature_settings(LLMAACFeatureExtractor(feature_type="fbank")) != _raw_feature_settings(fresh)


def test_group_by_duration_gives_the_trainer_one_length_per_pair(tmp_path, tiny_lm_dir, monkeypatch):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from llm_aac.train.caption_trainer import CaptionTrainer

    samplers = []
    original = CaptionTrainer._get_train_sampler

    def recording(self, *args, **kwargs):
        samplers.append((original(self, *args, **kwargs), len(self.train_dataset)))
        return samplers[-1][0]

    monkeypatch.setattr(CaptionTrainer, "_get_train_sampler", recording)
    for group in ("true", "false"):
        finetune_aac.main(TINY + [
            "--language_model", str(tiny_lm_dir), "--synthetic_clips", "4", "--synthetic_eval_clips", "2",
            "--stage", "projector", "--max_steps", "1", "--eval_strategy", "no", "--max_frames", "200",
            "--group_by_duration", group, "--output_dir", str(tmp_path / group),
        ])
    (grouped, pairs), (plain, _) = samplers
    assert isinstance(grouped, LengthGroupedSampler) and len(grouped.lengths) == pairs
    assert not isinstance(plain, LengthGroupedSampler)

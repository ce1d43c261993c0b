"""A folder written by `save_captioner` is self-contained: in a fresh process where this project's packages cannot
be imported, AutoModel / AutoProcessor / pipeline("audio-captioning") with trust_remote_code give the in-process
captions, CLAP rescoring included."""

import json
import os
import subprocess
import sys

import numpy as np
import torch
from captioning_test_utils import audio_clips
from clap_test_utils import tiny_clap_config, tiny_word_tokenizer
from transformers import ClapModel, GenerationConfig, pipeline

from modeling_llm_aac.clap_scoring import TransformersClapScorer, default_clap_feature_extractor
from modeling_llm_aac.pipeline_audio_captioning import PIPELINE_CONFIG_NAME, save_captioner

# Runs in the subprocess: our packages are made unimportable even though the editable install is on sys.path.
REMOTE_SCRIPT = r"""
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("modeling_llm_aac", "llm_aac"):
            raise ImportError(name + " must not be importable in this test")
        return None

sys.meta_path.insert(0, Block())
import numpy as np, torch
from transformers import AutoModel, AutoProcessor, pipeline

folder, clips_file = sys.argv[1], sys.argv[2]
clips = list(np.load(clips_file).values())
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
inputs = processor(clips, sampling_rate=16000)
generated = model.generate(**inputs, do_sample=False)
direct = processor.batch_decode(generated, prompt_length=inputs["input_ids"].shape[1])
captioner = pipeline("audio-captioning", model=folder, trust_remote_code=True, device="cpu")
rescored = captioner(clips, batch_size=2, return_candidates=True)
plain = captioner(clips, batch_size=2, candidates="none")
print(json.dumps({
    "direct": direct, "plain": [o["caption"] for o in plain], "rescored": rescored,
    "classes": [type(model).__module__, type(processor).__module__, type(captioner).__module__,
                type(captioner.clap_scorer).__name__],
    "ours_imported": sorted(m for m in sys.modules if m.split(".")[0] in ("modeling_llm_aac", "llm_aac")),
}))
"""


def test_saved_captioner_runs_as_remote_code_without_the_package(tmp_path, tiny_captioner_parts):
    model, processor = tiny_captioner_parts
    torch.manual_seed(0)
    clap_model = ClapModel(tiny_clap_config()).eval()
    scorer = TransformersClapScorer(clap_model, default_clap_feature_extractor(clap_model.config), tiny_word_tokenizer(),
                                    lm_weight=0.05)
    generation_config = GenerationConfig(num_beams=2, max_new_tokens=8, eos_token_id=model.generation_config.eos_token_id,
                                         pad_token_id=model.generation_config.pad_token_id)
    folder = tmp_path / "captioner"
    in_process = save_captioner(folder, model, processor, clap=scorer, generation_config=generation_config,
                                candidates="slam", beam_sizes=(2, 3, 4))

    files = set(os.listdir(folder))
    assert {"config.json", "model.safetensors", "generation_config.json", "processor_config.json",
            "preprocessor_config.json", "tokenizer.json", PIPELINE_CONFIG_NAME, "clap"} <= files
    remote_code = {"pipeline_audio_captioning.py", "caption_candidates.py", "fast_generation.py", "clap_scoring.py",
                   "modeling_llm_aac.py", "configuration_llm_aac.py", "processing_llm_aac.py",
                   "feature_extraction_llm_aac.py", "modeling_eat.py", "configuration_eat.py", "projectors.py",
                   "clap_torch_preprocessing.py", "sinc_resample.py"}  # the CLAP scorer's GPU preprocessing
    assert remote_code <= files
    for name in files:  # Hub files: flat, single-dot imports of siblings only
        if name.endswith(".py"):
            text = (folder / name).read_text()
            assert "from modeling_llm_aac" not in text and "import llm_aac" not in text and "from llm_aac" not in text, name
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"]["audio-captioning"]["impl"] == "pipeline_audio_captioning.AudioCaptioningPipeline"
    settings = json.loads((folder / PIPELINE_CONFIG_NAME).read_text())
    assert settings["defaults"] == {"candidates": "slam", "beam_sizes": [2, 3, 4]}
    assert settings["clap"]["backend"] == "transformers" and settings["clap"]["lm_weight"] == 0.05

    clips = audio_clips()
    np.savez(tmp_path / "clips.npz", *clips)
    expected_rescored = in_process(clips, batch_size=3, return_candidates=True)
    expected_plain = [o["caption"] for o in in_process(clips, candidates="none")]
    # The in-process folder load (our registered classes) agrees too.
    reloaded = pipeline("audio-captioning", model=str(folder), device="cpu", trust_remote_code=True)
    assert [o["caption"] for o in reloaded(clips, candidates="none")] == expected_plain

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH="",
               OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(folder), str(tmp_path / "clips.npz")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["ours_imported"] == []
    assert all(name.startswith("transformers_modules.") for name in remote["classes"][:3])
    assert remote["classes"][3] == "TransformersClapScorer"
    assert remote["direct"] == expected_plain
    assert remote["plain"] == expected_plain
    assert [o["caption"] for o in remote["rescored"]] == [o["caption"] for o in expected_rescored]
    for theirs, ours in zip(remote["rescored"], expected_rescored):
        assert [c["caption"] for c in theirs["candidates"]] == [c["caption"] for c in ours["candidates"]]
        np.testing.assert_allclose([c["score"] for c in theirs["candidates"]], [c["score"] for c in ours["candidates"]],
                                   atol=1e-4)

"""laion-clap `.pt` -> transformers ClapModel.

The checkpoints here are written with laion-clap's own parameter names, spelled out from the
modules of LAION-AI/CLAP (`clap_module/model.py`: `audio_branch`, `text_branch` = a HF
RobertaModel, `{audio,text}_projection` = Sequential(Linear, ReLU, Linear), `{audio,text}_transform`
= MLPLayers, `logit_scale_{a,t}`; `clap_module/htsat.py`: `spectrogram_extractor`,
`logmel_extractor`, `bn0`, `patch_embed`, `layers.i.blocks.j.{norm1,attn.{qkv,proj,
relative_position_bias_table,relative_position_index},norm2,mlp.fc1,mlp.fc2}`, `attn_mask` on shifted
blocks, `layers.i.downsample.{reduction,norm}`, `norm`, `tscam_conv`, `head`;
`feature_fusion.py`: AFF `local_att` / `global_att`), and saved the way laion-clap's training
does (`{"epoch", "state_dict": {"module." + name: tensor}}`).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from clap_test_utils import tiny_word_tokenizer, tone
from transformers import ClapModel, RobertaConfig, RobertaModel

from modeling_llm_aac.clap_scoring import TransformersClapScorer, load_clap_scorer
from modeling_llm_aac.convert_laion_clap import (
    LaionClapConversionError,
    clap_config_from_laion_state_dict,
    convert_laion_clap_checkpoint,
    convert_laion_clap_state_dict,
    load_laion_clap_state_dict,
)

EMBED, DEPTHS, HEADS, WINDOW, SPEC, MELS, JOINT, CLASSES = 8, (2, 2), (2, 4), 8, 256, 64, 12, 7


def _shifted_window_mask(resolution: int, window: int) -> torch.Tensor:
    """Swin's mask for shifted windows (values are irrelevant to the converter; its shape tells
    the input size)."""
    num_windows = (resolution // window) ** 2
    return torch.zeros(num_windows, window * window, window * window)


def laion_state_dict(*, fusion: bool = False, seed: int = 0) -> tuple[dict, RobertaModel]:
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.1

    sd: dict[str, torch.Tensor] = {}
    n_fft = 1024
    sd["audio_branch.spectrogram_extractor.stft.conv_real.weight"] = rand(n_fft // 2 + 1, 1, n_fft)
    sd["audio_branch.spectrogram_extractor.stft.conv_imag.weight"] = rand(n_fft // 2 + 1, 1, n_fft)
    sd["audio_branch.logmel_extractor.melW"] = rand(n_fft // 2 + 1, MELS)
    for name in ("weight", "bias", "running_mean"):
        sd[f"audio_branch.bn0.{name}"] = rand(MELS)
    sd["audio_branch.bn0.running_var"] = rand(MELS).abs() + 1
    sd["audio_branch.bn0.num_batches_tracked"] = torch.tensor(5)
    sd["audio_branch.patch_embed.proj.weight"] = rand(EMBED, 1, 4, 4)
    sd["audio_branch.patch_embed.proj.bias"] = rand(EMBED)
    sd["audio_branch.patch_embed.norm.weight"] = rand(EMBED)
    sd["audio_branch.patch_embed.norm.bias"] = rand(EMBED)
    if fusion:
        inter = EMBED // 4
        sd["audio_branch.patch_embed.mel_conv2d.weight"] = rand(EMBED, 1, 4, 12)
        sd["audio_branch.patch_embed.mel_conv2d.bias"] = rand(EMBED)
        for branch, (conv_a, bn_a, conv_b, bn_b) in {"local_att": (0, 1, 3, 4), "global_att": (1, 2, 4, 5)}.items():
            prefix = f"audio_branch.patch_embed.fusion_model.{branch}"
            sd[f"{prefix}.{conv_a}.weight"] = rand(inter, EMBED, 1, 1)
            sd[f"{prefix}.{conv_a}.bias"] = rand(inter)
            sd[f"{prefix}.{conv_b}.weight"] = rand(EMBED, inter, 1, 1)
            sd[f"{prefix}.{conv_b}.bias"] = rand(EMBED)
            for bn, width in ((bn_a, inter), (bn_b, EMBED)):
                sd[f"{prefix}.{bn}.weight"] = rand(width)
                sd[f"{prefix}.{bn}.bias"] = rand(width)
                sd[f"{prefix}.{bn}.running_mean"] = rand(width)
                sd[f"{prefix}.{bn}.running_var"] = rand(width).abs() + 1
                sd[f"{prefix}.{bn}.num_batches_tracked"] = torch.tensor(3)
    resolution = SPEC // 4
    for layer, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
        dim = EMBED * 2**layer
        window = min(WINDOW, resolution)
        for block in range(depth):
            p = f"audio_branch.layers.{layer}.blocks.{block}."
            sd[p + "norm1.weight"], sd[p + "norm1.bias"] = rand(dim), rand(dim)
            sd[p + "attn.relative_position_bias_table"] = rand((2 * window - 1) ** 2, heads)
            sd[p + "attn.relative_position_index"] = torch.randint(0, (2 * window - 1) ** 2, (window**2, window**2))
            sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"] = rand(3 * dim, dim), rand(3 * dim)
            sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"] = rand(dim, dim), rand(dim)
            sd[p + "norm2.weight"], sd[p + "norm2.bias"] = rand(dim), rand(dim)
            sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"] = rand(4 * dim, dim), rand(4 * dim)
            sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"] = rand(dim, 4 * dim), rand(dim)
            if block % 2 == 1 and resolution > WINDOW:
                sd[p + "attn_mask"] = _shifted_window_mask(resolution, window)
        if layer < len(DEPTHS) - 1:
            p = f"audio_branch.layers.{layer}.downsample."
            sd[p + "reduction.weight"] = rand(2 * dim, 4 * dim)
            sd[p + "norm.weight"], sd[p + "norm.bias"] = rand(4 * dim), rand(4 * dim)
            resolution //= 2
    final_dim = EMBED * 2 ** (len(DEPTHS) - 1)
    sd["audio_branch.norm.weight"], sd["audio_branch.norm.bias"] = rand(final_dim), rand(final_dim)
    sd["audio_branch.tscam_conv.weight"] = rand(CLASSES, final_dim, 2, 3)
    sd["audio_branch.tscam_conv.bias"] = rand(CLASSES)
    sd["audio_branch.head.weight"], sd["audio_branch.head.bias"] = rand(CLASSES, CLASSES), rand(CLASSES)

    roberta = RobertaModel(
        RobertaConfig(
            vocab_size=64,
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=40,
            type_vocab_size=1,
            layer_norm_eps=1e-5,
            pad_token_id=1,
        )
    ).eval()
    for key, value in roberta.state_dict().items():
        sd["text_branch." + key] = value.clone()
    # laion-clap checkpoints made with transformers < 4.31 also hold this buffer.
    sd["text_branch.embeddings.position_ids"] = torch.arange(40)[None]

    for tower, width in (("audio", final_dim), ("text", 16)):
        sd[f"{tower}_projection.0.weight"], sd[f"{tower}_projection.0.bias"] = rand(JOINT, width), rand(JOINT)
        sd[f"{tower}_projection.2.weight"], sd[f"{tower}_projection.2.bias"] = rand(JOINT, JOINT), rand(JOINT)
        for i in (0, 3):
            sd[f"{tower}_transform.sequential.{i}.weight"] = rand(JOINT, JOINT)
            sd[f"{tower}_transform.sequential.{i}.bias"] = rand(JOINT)
    sd["logit_scale_a"] = torch.tensor(math.log(1 / 0.07))
    sd["logit_scale_t"] = torch.tensor(math.log(1 / 0.05))
    return sd, roberta


def write_checkpoint(path, state_dict) -> str:
    torch.save({"epoch": 3, "name": "tiny", "state_dict": {"module." + k: v for k, v in state_dict.items()}}, path)
    return str(path)


@pytest.fixture(scope="module")
def laion_checkpoint(tmp_path_factory):
    state_dict, roberta = laion_state_dict()
    path = write_checkpoint(tmp_path_factory.mktemp("laion") / "630k-tiny.pt", state_dict)
    return path, state_dict, roberta


def test_config_inferred_from_shapes(laion_checkpoint):
    _, state_dict, _ = laion_checkpoint
    config = clap_config_from_laion_state_dict(state_dict)
    audio, text = config.audio_config, config.text_config
    assert list(audio.depths) == list(DEPTHS) and list(audio.num_attention_heads) == list(HEADS)
    assert audio.window_size == WINDOW and audio.spec_size == SPEC and audio.num_mel_bins == MELS
    assert audio.patch_embeds_hidden_size == EMBED and audio.hidden_size == EMBED * 2
    assert audio.enable_fusion is False and audio.num_classes == CLASSES
    assert config.projection_dim == JOINT == audio.projection_dim == text.projection_dim
    assert (text.vocab_size, text.hidden_size, text.num_hidden_layers, text.intermediate_size) == (64, 16, 2, 32)
    assert text.max_position_embeddings == 40 and text.layer_norm_eps == 1e-5


def test_weights_land_where_they_belong(laion_checkpoint):
    path, state_dict, roberta = laion_checkpoint
    loaded = load_laion_clap_state_dict(path)
    assert set(loaded) == set(state_dict)  # "module." prefix stripped
    model = convert_laion_clap_state_dict(loaded)
    hf = model.state_dict()
    block = "audio_model.audio_encoder.layers.1.blocks.1."
    qkv_w = state_dict["audio_branch.layers.1.blocks.1.attn.qkv.weight"]
    dim = qkv_w.shape[1]
    torch.testing.assert_close(hf[block + "attention.self.query.weight"], qkv_w[:dim])
    torch.testing.assert_close(hf[block + "attention.self.key.weight"], qkv_w[dim : 2 * dim])
    torch.testing.assert_close(hf[block + "attention.self.value.weight"], qkv_w[2 * dim :])
    torch.testing.assert_close(
        hf[block + "attention.self.value.bias"], state_dict["audio_branch.layers.1.blocks.1.attn.qkv.bias"][2 * dim :]
    )
    pairs = {
        block + "attention.output.dense.weight": "audio_branch.layers.1.blocks.1.attn.proj.weight",
        block + "layernorm_before.weight": "audio_branch.layers.1.blocks.1.norm1.weight",
        block + "layernorm_after.bias": "audio_branch.layers.1.blocks.1.norm2.bias",
        block + "intermediate.dense.weight": "audio_branch.layers.1.blocks.1.mlp.fc1.weight",
        block + "output.dense.bias": "audio_branch.layers.1.blocks.1.mlp.fc2.bias",
        block + "attention.self.relative_position_bias_table": "audio_branch.layers.1.blocks.1.attn.relative_position_bias_table",
        "audio_model.audio_encoder.batch_norm.running_var": "audio_branch.bn0.running_var",
        "audio_model.audio_encoder.patch_embed.proj.weight": "audio_branch.patch_embed.proj.weight",
        "audio_model.audio_encoder.layers.0.downsample.reduction.weight": "audio_branch.layers.0.downsample.reduction.weight",
        "audio_model.audio_encoder.norm.weight": "audio_branch.norm.weight",
        "audio_projection.linear1.weight": "audio_projection.0.weight",
        "audio_projection.linear2.bias": "audio_projection.2.bias",
        "text_projection.linear2.weight": "text_projection.2.weight",
        "text_model.encoder.layer.1.attention.self.key.weight": "text_branch.encoder.layer.1.attention.self.key.weight",
        "logit_scale_t": "logit_scale_t",
    }
    for hf_key, laion_key in pairs.items():
        torch.testing.assert_close(hf[hf_key], state_dict[laion_key], msg=hf_key)

    # Text tower: ClapTextModel with the converted weights is the RobertaModel it came from.
    input_ids = torch.tensor([[0, 5, 9, 13, 2, 1, 1], [0, 7, 2, 1, 1, 1, 1]])
    mask = (input_ids != 1).long()
    with torch.no_grad():
        expected = roberta(input_ids=input_ids, attention_mask=mask).pooler_output
        got = model.text_model(input_ids=input_ids, attention_mask=mask).pooler_output
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        # Projection: laion-clap's Sequential(Linear, ReLU, Linear).
        w0, b0 = state_dict["text_projection.0.weight"], state_dict["text_projection.0.bias"]
        w2, b2 = state_dict["text_projection.2.weight"], state_dict["text_projection.2.bias"]
        torch.testing.assert_close(model.text_projection(expected), torch.relu(expected @ w0.T + b0) @ w2.T + b2)


def test_converted_folder_loads_and_scores(laion_checkpoint, tmp_path):
    path, _, _ = laion_checkpoint
    out = tmp_path / "converted"
    model = convert_laion_clap_checkpoint(path, out, tokenizer=tiny_word_tokenizer())
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"} <= set(os.listdir(out))
    reloaded = ClapModel.from_pretrained(out)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value, msg=key)

    scorer = load_clap_scorer(out)
    assert isinstance(scorer, TransformersClapScorer) and scorer.sampling_rate == 48_000
    direct = load_clap_scorer(path, tokenizer=tiny_word_tokenizer())  # .pt converted in memory
    assert direct.backend == "transformers"
    clip = tone(440, 2.0, 16_000)
    scores = scorer.score(clip, ["a dog barks", "bird chirps"], sampling_rate=16_000)
    assert scores.shape == (2,) and torch.isfinite(scores).all() and scores.abs().max() <= 1 + 1e-5
    torch.testing.assert_close(direct.score(clip, ["a dog barks", "bird chirps"], sampling_rate=16_000), scores)


def test_fusion_checkpoint_converts_and_runs(tmp_path):
    state_dict, _ = laion_state_dict(fusion=True, seed=1)
    model = convert_laion_clap_state_dict(state_dict)
    assert model.config.audio_config.enable_fusion
    torch.testing.assert_close(
        model.state_dict()["audio_model.audio_encoder.patch_embed.fusion_model.global_att.4.weight"],
        state_dict["audio_branch.patch_embed.fusion_model.global_att.4.weight"],
    )
    scorer = load_clap_scorer(write_checkpoint(tmp_path / "fusion.pt", state_dict), tokenizer=tiny_word_tokenizer())
    embeds = scorer.encode_audio([tone(300, 1.0, 48_000), tone(600, 12.0, 48_000)], sampling_rate=48_000)
    assert embeds.shape == (2, JOINT)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(2))


def test_bad_checkpoints_get_clear_errors(tmp_path, laion_checkpoint):
    _, state_dict, _ = laion_checkpoint
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_laion_clap_state_dict(tmp_path / "missing.pt")

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(LaionClapConversionError, match="not a readable torch checkpoint"):
        load_laion_clap_state_dict(garbage)

    class Payload:  # anything beyond tensors and containers is refused, never executed
        def __reduce__(self):
            return (os.getcwd, ())

    hostile = tmp_path / "hostile.pt"
    torch.save({"state_dict": {"logit_scale_a": torch.tensor(1.0)}, "extra": Payload()}, hostile)
    with pytest.raises(LaionClapConversionError, match="Refusing to load .*posix.getcwd"):
        load_laion_clap_state_dict(hostile)

    missing = dict(state_dict)
    del missing["audio_branch.layers.1.blocks.0.mlp.fc2.weight"]
    with pytest.raises(LaionClapConversionError, match=r"missing: \['audio_model.audio_encoder.layers.1.blocks.0.output.dense.weight'\]"):
        convert_laion_clap_state_dict(missing)

    extra = dict(state_dict)
    extra["audio_branch.some_new_module.weight"] = torch.zeros(2)
    with pytest.raises(LaionClapConversionError, match="some_new_module"):
        convert_laion_clap_state_dict(extra)

    no_text = {k: v for k, v in state_dict.items() if not k.startswith("text_branch.")}
    with pytest.raises(LaionClapConversionError, match="text_branch.embeddings.word_embeddings.weight"):
        convert_laion_clap_state_dict(no_text)


def test_cli_converts(laion_checkpoint, tmp_path):
    from llm_aac.cli import main

    path, _, _ = laion_checkpoint
    assert main(["convert-clap", path, str(tmp_path / "out")]) == 0
    assert ClapModel.from_pretrained(tmp_path / "out").config.audio_config.spec_size == SPEC


def test_laion_clap_package_backend_explains_when_missing(laion_checkpoint):
    pytest.importorskip("numpy")
    try:
        import laion_clap  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="backend='laion_checkpoint'"):
            load_clap_scorer(laion_checkpoint[0], backend="laion_clap")
    else:  # pragma: no cover - laion_clap cannot be installed next to numpy >= 2
        pytest.skip("laion_clap is installed; its own loader needs roberta-base from the Hub.")


def test_random_input_is_rejected(laion_checkpoint):
    scorer = load_clap_scorer(laion_checkpoint[0], tokenizer=tiny_word_tokenizer())
    with pytest.raises(ValueError, match="sampling_rate is required"):
        scorer.encode_audio(np.zeros(100, dtype=np.float32))


def test_laion_checkpoint_scorer_takes_the_preprocessing_option(laion_checkpoint):
    path = laion_checkpoint[0]
    on_cpu = load_clap_scorer(path, tokenizer=tiny_word_tokenizer(), preprocessing="numpy")
    in_torch = load_clap_scorer(path, tokenizer=tiny_word_tokenizer(), preprocessing="torch")
    assert (on_cpu.preprocessing, in_torch.preprocessing) == ("numpy", "torch") and in_torch.uses_torch_preprocessing
    clip, texts = tone(440, 2.0, 44_100), ["a dog barks", "bird chirps"]
    torch.testing.assert_close(in_torch.score(clip, texts, 44_100), on_cpu.score(clip, texts, 44_100), atol=1e-4, rtol=0)

"""`llm-aac convert-eat`: official fairseq `.pt` and HF-port folders -> EATModel folders.

The parity checks compare against an independent EAT forward written here with plain torch ops on
the *official* key names, following the released code (data2vec 2.0 `AltBlock` with
`layer_norm_first=False`, the image modality encoder of EAT, the fine-tuning head).
"""

import enum
import json
import math
import os
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import modeling_llm_aac  # noqa: F401  (registers the Auto* classes)
from llm_aac.cli import main as cli_main
from modeling_llm_aac.convert_eat_checkpoint import (
    EATConversionError,
    InertObject,
    UnsafeCheckpointError,
    convert_eat_checkpoint,
    inert_to_plain,
    load_checkpoint_safely,
)
from modeling_llm_aac.modeling_eat import EATForAudioClassification, EATModel
from transformers import AutoModel, AutoModelForAudioClassification

HIDDEN, LAYERS, HEADS, FFN, PATCH, BINS, MAX_LENGTH, LABELS = 32, 2, 2, 64, 16, 128, 8, 5
EPS = 1e-6
PREFIX = "modality_encoders.IMAGE."


# -- an official-style checkpoint -----------------------------------------------------------------


def official_positions(dim, num_time, num_freq):
    """EAT's numpy recipe: meshgrid(w, h); first half of the channels from w, then h; float32."""
    grid = np.stack(np.meshgrid(np.arange(num_freq, dtype=np.float32), np.arange(num_time, dtype=np.float32)))

    def one_axis(d, pos):
        omega = np.arange(d // 2, dtype=np.float32)
        omega /= d / 2.0
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    table = np.concatenate([one_axis(dim // 2, grid[0]), one_axis(dim // 2, grid[1])], axis=1)
    return torch.from_numpy(table).float().unsqueeze(0)


def random_official_state_dict(seed=0, finetuned=False, with_pretraining_parts=True):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=gen) * scale

    def norm_weight():
        return 1.0 + rand(HIDDEN, scale=0.1)

    sd = {
        PREFIX + "local_encoder.proj.weight": rand(HIDDEN, 1, PATCH, PATCH, scale=0.05),
        PREFIX + "local_encoder.proj.bias": rand(HIDDEN),
        PREFIX + "extra_tokens": rand(1, 1, HIDDEN, scale=1.0),
        PREFIX + "fixed_positional_encoder.positions": official_positions(HIDDEN, MAX_LENGTH, BINS // PATCH),
        PREFIX + "context_encoder.norm.weight": norm_weight(),
        PREFIX + "context_encoder.norm.bias": rand(HIDDEN),
    }
    for i in range(LAYERS):
        sd.update({
            f"blocks.{i}.norm1.weight": norm_weight(), f"blocks.{i}.norm1.bias": rand(HIDDEN),
            f"blocks.{i}.attn.qkv.weight": rand(3 * HIDDEN, HIDDEN), f"blocks.{i}.attn.qkv.bias": rand(3 * HIDDEN),
            f"blocks.{i}.attn.proj.weight": rand(HIDDEN, HIDDEN), f"blocks.{i}.attn.proj.bias": rand(HIDDEN),
            f"blocks.{i}.norm2.weight": norm_weight(), f"blocks.{i}.norm2.bias": rand(HIDDEN),
            f"blocks.{i}.mlp.fc1.weight": rand(FFN, HIDDEN), f"blocks.{i}.mlp.fc1.bias": rand(FFN),
            f"blocks.{i}.mlp.fc2.weight": rand(HIDDEN, FFN), f"blocks.{i}.mlp.fc2.bias": rand(HIDDEN),
        })
    if finetuned:
        sd = {f"model.{k}": v for k, v in sd.items()}
        sd.update({
            "fc_norm.weight": norm_weight(), "fc_norm.bias": rand(HIDDEN),
            "head.weight": rand(LABELS, HIDDEN), "head.bias": rand(LABELS),
        })
    elif with_pretraining_parts:
        sd[PREFIX + "decoder.blocks.0.0.weight"] = rand(HIDDEN, HIDDEN // 16, 3, 3)
        sd[PREFIX + "decoder.proj.weight"] = rand(HIDDEN, HIDDEN)
        sd["_ema"] = {"blocks.0.norm1.weight": rand(HIDDEN)}
    return sd


def reference_eat_forward(sd, features, frame_mask=None, prefix=""):
    """EAT forward on official keys: returns (last hidden states, logits or None)."""
    p = prefix + PREFIX
    x = features.unsqueeze(1)  # [B, 1, T, F]
    x = F.conv2d(x, sd[p + "local_encoder.proj.weight"], sd[p + "local_encoder.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = x + sd[p + "fixed_positional_encoder.positions"][:, : x.size(1), :]
    x = torch.cat([sd[p + "extra_tokens"].expand(x.size(0), -1, -1), x], dim=1)
    x = F.layer_norm(x, (HIDDEN,), sd[p + "context_encoder.norm.weight"], sd[p + "context_encoder.norm.bias"], EPS)

    padding = None
    if frame_mask is not None:
        batch, frames = frame_mask.shape
        time_pad = frame_mask.reshape(batch, frames // PATCH, PATCH).sum(-1) == 0
        padding = F.pad(time_pad.repeat_interleave(BINS // PATCH, dim=1), (1, 0), value=False)

    batch, tokens, dim = x.shape
    for i in range(LAYERS):
        b = f"{prefix}blocks.{i}."
        qkv = F.linear(x, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"])
        qkv = qkv.reshape(batch, tokens, 3, HEADS, dim // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (dim // HEADS) ** -0.5, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        if padding is not None and padding.any():
            attn = attn.masked_fill(padding[:, None, None, :], float("-inf"))
        attn = attn.softmax(dim=-1, dtype=torch.float32)
        y = (attn @ v).transpose(1, 2).reshape(batch, tokens, dim)
        x = x + F.linear(y, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        x = F.layer_norm(x, (dim,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], EPS)
        mlp = F.linear(F.gelu(F.linear(x, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
                       sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        x = F.layer_norm(x + mlp, (dim,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], EPS)

    logits = None
    if "head.weight" in sd:
        pooled = F.layer_norm(x[:, 0], (dim,), sd["fc_norm.weight"], sd["fc_norm.bias"], 1e-6)
        logits = F.linear(pooled, sd["head.weight"], sd["head.bias"])
    return x, logits


# -- fake fairseq / omegaconf objects pickled into the checkpoint ----------------------------------


@pytest.fixture
def fake_config_modules():
    """Modules named like omegaconf / fairseq, present only while the checkpoint is written."""
    created = {}

    def module(name):
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # pickle imports the parent packages first
            dotted = ".".join(parts[:depth])
            if dotted not in sys.modules:
                created[dotted] = sys.modules[dotted] = types.ModuleType(dotted)
        return sys.modules[name]

    base, nodes, dictconfig = module("omegaconf.base"), module("omegaconf.nodes"), module("omegaconf.dictconfig")
    fairseq_mod = module("fairseq.models.data2vec.fake_modality")

    class ContainerMetadata:
        def __init__(self):
            self.ref_type, self.object_type, self.optional, self.key = "Any", dict, True, None

    class AnyNode:
        def __init__(self, value, parent=None):
            self._metadata, self._parent, self._val = ContainerMetadata(), parent, value

        def __getstate__(self):
            return dict(self.__dict__)

    class DictConfig:
        def __init__(self, content):
            self._metadata, self._parent = ContainerMetadata(), None
            self._content = {k: v if isinstance(v, DictConfig) else AnyNode(v, self) for k, v in content.items()}

        def __getstate__(self):
            return dict(self.__dict__)

        def __setstate__(self, state):  # would run on a real unpickle; the converter must never call it
            raise AssertionError("DictConfig.__setstate__ executed")

    class Modality(enum.Enum):
        AUDIO = 1
        IMAGE = 2

    for cls, mod in ((ContainerMetadata, base), (AnyNode, nodes), (DictConfig, dictconfig), (Modality, fairseq_mod)):
        cls.__module__ = mod.__name__
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)

    yield SimpleFakes(DictConfig=DictConfig, Modality=Modality, remove=lambda: [sys.modules.pop(n, None)
                                                                                 for n in created])
    for name in created:
        sys.modules.pop(name, None)


class SimpleFakes(types.SimpleNamespace):
    pass


def fairseq_checkpoint(fakes, state_dict, finetuned=False):
    image = {"in_chans": 1, "prenet_depth": 0, "num_extra_tokens": 1, "use_alibi_encoder": False,
             "max_length": MAX_LENGTH, "mask_prob": 0.8}
    pretrain_model = {"_name": "data2vec_multi", "depth": LAYERS, "num_heads": HEADS, "embed_dim": HIDDEN,
                      "norm_eps": EPS, "mlp_ratio": FFN / HIDDEN, "layer_norm_first": False,
                      "supported_modality": fakes.Modality.IMAGE, "modalities": fakes.DictConfig({"image": image})}
    model_cfg = pretrain_model
    if finetuned:
        model_cfg = {"_name": "mae_image_classification", "num_classes": LABELS,
                     "pretrained_model_args": fakes.DictConfig({"model": fakes.DictConfig(pretrain_model)})}
    cfg = fakes.DictConfig({"model": fakes.DictConfig(model_cfg), "common": fakes.DictConfig({"seed": 1})})
    return {
        "cfg": cfg,
        "args": None,
        "model": state_dict,
        "optimizer_history": [{"criterion_name": "ModelCriterion", "num_updates": 10}],
        "extra_state": {"previous_best": np.float64(0.25), "epoch": 3},
    }


def save_fairseq(tmp_path, fakes, state_dict, finetuned=False, name="eat.pt"):
    path = tmp_path / name
    torch.save(fairseq_checkpoint(fakes, state_dict, finetuned), path)
    fakes.remove()  # the loader must survive without omegaconf / fairseq importable
    return path


def random_features(batch=2, frames=96, seed=3):
    return torch.randn(batch, frames, BINS, generator=torch.Generator().manual_seed(seed))


# -- safe loading ----------------------------------------------------------------------------------


def test_fairseq_pickle_loads_inert_without_omegaconf(tmp_path, fake_config_modules):
    path = save_fairseq(tmp_path, fake_config_modules, random_official_state_dict())
    assert "omegaconf.dictconfig" not in sys.modules
    checkpoint = load_checkpoint_safely(path)
    assert isinstance(checkpoint["cfg"], InertObject)
    assert checkpoint["cfg"].pickled_class == "omegaconf.dictconfig.DictConfig"
    cfg = inert_to_plain(checkpoint["cfg"])
    assert cfg["model"]["num_heads"] == HEADS
    assert cfg["model"]["supported_modality"] == 2  # enum member -> its value
    assert cfg["model"]["modalities"]["image"]["prenet_depth"] == 0
    assert torch.equal(checkpoint["model"]["blocks.0.norm1.weight"], random_official_state_dict()["blocks.0.norm1.weight"])
    assert "omegaconf.dictconfig" not in sys.modules


def test_importable_unknown_classes_are_not_run(tmp_path):
    module = types.ModuleType("side_effect_plugin")
    ran = []

    class Plugin:
        def __reduce__(self):
            return (Plugin, ("payload",))

        def __init__(self, text):
            ran.append(text)

    Plugin.__module__ = module.__name__
    Plugin.__qualname__ = "Plugin"
    module.Plugin = Plugin
    sys.modules[module.__name__] = module
    try:
        torch.save({"model": {}, "plugin": Plugin("at save")}, tmp_path / "plugin.pt")
        ran.clear()
        loaded = load_checkpoint_safely(tmp_path / "plugin.pt")
    finally:
        sys.modules.pop(module.__name__)
    assert ran == []  # even though the module was importable, its class never ran
    assert isinstance(loaded["plugin"], InertObject) and loaded["plugin"].pickled_args == ("payload",)


class _SystemCall:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _EvalCall:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("payload", ["system", "eval"])
def test_hostile_checkpoint_is_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    evil = _SystemCall(marker) if payload == "system" else _EvalCall()
    path = tmp_path / "evil.pt"
    torch.save({"model": random_official_state_dict(), "extra_state": evil}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"Refusing to load .*evil\.pt.*(system|eval)"):
        load_checkpoint_safely(path)
    with pytest.raises(UnsafeCheckpointError):
        convert_eat_checkpoint(path, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(EATConversionError, match="not a readable PyTorch checkpoint"):
        load_checkpoint_safely(path)
    with pytest.raises(FileNotFoundError):
        convert_eat_checkpoint(tmp_path / "missing.pt")


# -- conversion + parity -----------------------------------------------------------------------------


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_official_pretrain_checkpoint_parity(tmp_path, fake_config_modules, attn_implementation):
    state_dict = random_official_state_dict()
    path = save_fairseq(tmp_path, fake_config_modules, state_dict)
    out_dir = tmp_path / "converted"
    convert_eat_checkpoint(path, out_dir)

    model = AutoModel.from_pretrained(out_dir, attn_implementation=attn_implementation).eval()
    assert isinstance(model, EATModel) and model.config._attn_implementation == attn_implementation
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (HIDDEN, LAYERS, HEADS)
    assert (config.intermediate_size, config.max_length, config.num_mel_bins) == (FFN, MAX_LENGTH, BINS)
    # The released position table is carried over exactly.
    assert torch.equal(model.embeddings.position_embeddings, state_dict[PREFIX + "fixed_positional_encoder.positions"])

    features = random_features()
    mask = torch.ones(2, 96, dtype=torch.long)
    mask[1, 40:] = 0  # 40 real frames: time patches 0..2 real, the third partly padded
    with torch.no_grad():
        ours = model(features).last_hidden_state
        expected, _ = reference_eat_forward(state_dict, features)
        ours_masked = model(features, attention_mask=mask)
        expected_masked, _ = reference_eat_forward(state_dict, features, frame_mask=mask)
    assert float((ours - expected).abs().max()) <= 1e-5
    real = ours_masked.attention_mask.bool()
    assert float((ours_masked.last_hidden_state - expected_masked)[real].abs().max()) <= 1e-5


def test_official_finetuned_checkpoint_parity(tmp_path, fake_config_modules):
    state_dict = random_official_state_dict(seed=1, finetuned=True)
    path = save_fairseq(tmp_path, fake_config_modules, state_dict, finetuned=True)
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("index,mid,display_name\n" + "".join(f"{i},/m/{i},sound {i}\n" for i in range(LABELS)))
    out_dir = tmp_path / "converted"
    assert cli_main(["convert-eat", str(path), str(out_dir), "--labels-csv", str(labels_csv)]) == 0

    classifier = AutoModelForAudioClassification.from_pretrained(out_dir).eval()
    assert isinstance(classifier, EATForAudioClassification)
    assert classifier.config.num_labels == LABELS and classifier.config.id2label[4] == "sound 4"
    assert classifier.config.problem_type == "single_label_classification"
    features = random_features(seed=4)
    with torch.no_grad():
        hidden, logits = reference_eat_forward(state_dict, features, prefix="model.")
        out = classifier(features, output_hidden_states=True)
    assert float((out.logits - logits).abs().max()) <= 1e-5
    assert float((out.hidden_states[-1] - hidden).abs().max()) <= 1e-5
    # The encoder of the fine-tuned folder loads on its own too.
    encoder = AutoModel.from_pretrained(out_dir).eval()
    with torch.no_grad():
        assert float((encoder(features).last_hidden_state - hidden).abs().max()) <= 1e-5

    saved = sorted(os.listdir(out_dir))
    assert "model.safetensors" in saved and "config.json" in saved and "preprocessor_config.json" in saved
    # The saved fbank extractor feeds the converted classifier directly.
    from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor

    extractor = LLMAACFeatureExtractor.from_pretrained(out_dir)
    assert extractor.feature_type == "fbank" and extractor.feature_size == BINS
    waveform = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    inputs = extractor(waveform, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        logits = classifier(**inputs).logits
    assert logits.shape == (1, LABELS) and torch.isfinite(logits).all()


def test_encoder_only_and_refuses_to_overwrite(tmp_path, fake_config_modules):
    state_dict = random_official_state_dict(seed=2, finetuned=True)
    path = save_fairseq(tmp_path, fake_config_modules, state_dict, finetuned=True)
    model = convert_eat_checkpoint(path, tmp_path / "enc", encoder_only=True, save_feature_extractor=False)
    assert type(model) is EATModel
    assert json.loads((tmp_path / "enc" / "config.json").read_text())["architectures"] == ["EATModel"]
    with pytest.raises(FileExistsError, match="already holds a model"):
        convert_eat_checkpoint(path, tmp_path / "enc")


def test_checkpoint_without_config_needs_heads(tmp_path):
    state_dict = random_official_state_dict(with_pretraining_parts=False)
    path = tmp_path / "bare.pt"
    torch.save({"model": state_dict}, path)
    model = convert_eat_checkpoint(path, num_attention_heads=HEADS)
    features = random_features(frames=32)
    with torch.no_grad():
        expected, _ = reference_eat_forward(state_dict, features)
        assert float((model(features).last_hidden_state - expected).abs().max()) <= 1e-5


def test_unexpected_and_missing_keys_are_named(tmp_path):
    state_dict = random_official_state_dict(with_pretraining_parts=False)
    state_dict["blocks.0.attn.rel_pos_bias"] = torch.zeros(3)
    torch.save({"model": state_dict}, tmp_path / "extra.pt")
    with pytest.raises(EATConversionError, match=r"blocks\.0\.attn\.rel_pos_bias"):
        convert_eat_checkpoint(tmp_path / "extra.pt", num_attention_heads=HEADS)

    state_dict = random_official_state_dict(with_pretraining_parts=False)
    del state_dict["blocks.1.mlp.fc2.bias"]
    torch.save({"model": state_dict}, tmp_path / "missing.pt")
    with pytest.raises(EATConversionError, match=r"encoder\.layers\.1\.mlp\.fc2\.bias"):
        convert_eat_checkpoint(tmp_path / "missing.pt", num_attention_heads=HEADS)

    state_dict = random_official_state_dict(with_pretraining_parts=False)
    state_dict[PREFIX + "fixed_positional_encoder.positions"] = torch.randn(1, MAX_LENGTH * 8, HIDDEN)
    torch.save({"model": state_dict}, tmp_path / "learned_positions.pt")
    with pytest.raises(EATConversionError, match="sin-cos"):
        convert_eat_checkpoint(tmp_path / "learned_positions.pt", num_attention_heads=HEADS)

    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(EATConversionError, match=r"no fairseq weights under ckpt\['model'\]"):
        convert_eat_checkpoint(tmp_path / "other.pt")


def test_pre_ln_config_is_refused(tmp_path, fake_config_modules):
    checkpoint = fairseq_checkpoint(fake_config_modules, random_official_state_dict())
    checkpoint["cfg"]._content["model"]._content["layer_norm_first"]._val = True
    torch.save(checkpoint, tmp_path / "preln.pt")
    fake_config_modules.remove()
    with pytest.raises(EATConversionError, match="layer_norm_first"):
        convert_eat_checkpoint(tmp_path / "preln.pt")


# -- HF-port folders ----------------------------------------------------------------------------------


def write_hf_port(folder, official_sd, finetuned, weights_format):
    folder.mkdir()
    inner = {}
    for key, value in official_sd.items():
        key = key[len("model."):] if key.startswith("model.") else key
        if key.startswith("fc_norm.") or key.startswith("head."):
            inner[key] = value
            continue
        key = key.replace(PREFIX + "context_encoder.norm.", "pre_norm.").replace(PREFIX, "")
        inner[key] = value
    port_sd = {f"model.{k}": v.contiguous() for k, v in inner.items()}
    config = {
        "architectures": ["EATModel"], "model_type": "eat",
        "auto_map": {"AutoConfig": "configuration_eat.EATConfig", "AutoModel": "modeling_eat.EATModel"},
        "embed_dim": HIDDEN, "depth": LAYERS, "num_heads": HEADS, "patch_size": PATCH, "stride": PATCH,
        "in_chans": 1, "mel_bins": BINS, "max_length": MAX_LENGTH, "num_classes": LABELS,
        "model_variant": "finetune" if finetuned else "pretrain", "mlp_ratio": FFN / HIDDEN, "qkv_bias": True,
        "norm_eps": EPS, "img_size": [1024, 128], "layer_norm_first": False,
    }
    (folder / "config.json").write_text(json.dumps(config))
    if weights_format == "safetensors":
        save_file(port_sd, str(folder / "model.safetensors"))
    else:
        torch.save(port_sd, folder / "pytorch_model.bin")


@pytest.mark.parametrize("finetuned,weights_format", [(False, "safetensors"), (True, "bin")])
def test_hf_port_folder_parity(tmp_path, finetuned, weights_format):
    official = random_official_state_dict(seed=5, finetuned=finetuned, with_pretraining_parts=False)
    write_hf_port(tmp_path / "port", official, finetuned, weights_format)
    out_dir = tmp_path / "converted"
    assert cli_main(["convert-eat", str(tmp_path / "port"), str(out_dir), "--no-feature-extractor"]) == 0
    auto = AutoModelForAudioClassification if finetuned else AutoModel
    model = auto.from_pretrained(out_dir).eval()
    features = random_features(seed=6)
    prefix = "model." if finetuned else ""
    with torch.no_grad():
        hidden, logits = reference_eat_forward(official, features, prefix=prefix)
        if finetuned:
            assert float((model(features).logits - logits).abs().max()) <= 1e-5
        else:
            assert float((model(features).last_hidden_state - hidden).abs().max()) <= 1e-5


def test_hf_port_inconsistent_config_is_refused(tmp_path):
    official = random_official_state_dict(seed=5, with_pretraining_parts=False)
    write_hf_port(tmp_path / "port", official, False, "safetensors")
    config = json.loads((tmp_path / "port" / "config.json").read_text())
    config["depth"] = 3
    (tmp_path / "port" / "config.json").write_text(json.dumps(config))
    with pytest.raises(EATConversionError, match="depth=3"):
        convert_eat_checkpoint(tmp_path / "port")
    config["depth"], config["stride"] = LAYERS, 10
    (tmp_path / "port" / "config.json").write_text(json.dumps(config))
    with pytest.raises(EATConversionError, match="stride=10"):
        convert_eat_checkpoint(tmp_path / "port")


def test_positions_recipe_matches_ours():
    from modeling_llm_aac.modeling_eat import build_2d_sincos_positions

    table = build_2d_sincos_positions(768, 768, 8)
    official = official_positions(768, 768, 8)[0]
    # Only float32 rounding differs (numpy's and torch's float32 pow / sin round differently; the
    # angles reach 767 rad), ~6e-5 here; converted models keep the checkpoint's own table anyway.
    assert float((table - official).abs().max()) < 5e-4
    assert math.isclose(float(table[8 * 5 + 3, 0]), math.sin(3.0), abs_tol=1e-6)  # freq half first
    assert math.isclose(float(table[8 * 5 + 3, 384]), math.sin(5.0), abs_tol=1e-6)  # then time

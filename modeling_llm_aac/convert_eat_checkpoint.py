"""Convert released EAT checkpoints to [`EATModel`] / [`EATForAudioClassification`] folders.

Two source layouts are understood:

* **official fairseq `.pt`** (`EAT-base_epoch30_pretrain.pt`, `EAT-base_epoch30_finetune_AS2M.pt`, ...):
  weights under `ckpt["model"]`; pretraining checkpoints name the encoder
  `modality_encoders.IMAGE.{local_encoder.proj, extra_tokens, fixed_positional_encoder.positions,
  context_encoder.norm}` and `blocks.{i}.*`; fine-tuned ones prefix all of that with `model.` and add
  `fc_norm.*` and `head.*`. The file also pickles fairseq / omegaconf config objects.
* **HF-port folder** (`worstchan/EAT-*`, remote code that breaks on transformers >= 5): `config.json`
  with `embed_dim, depth, num_heads, mel_bins, max_length, num_classes, model_variant, ...` and
  `model.safetensors` or `pytorch_model.bin` with keys `model.local_encoder.proj.*`,
  `model.extra_tokens`, `model.fixed_positional_encoder.positions`, `model.pre_norm.*`,
  `model.blocks.{i}.*` (+ `model.fc_norm.*`, `model.head.*`).

Pretraining-only tensors (the CNN decoder, the EMA teacher `_ema`, data2vec's other pretraining
heads) are dropped; any other unexpected or missing tensor is an error naming the keys.

Pickles are never allowed to run code: `.pt` / `.bin` files are read through
[`load_checkpoint_safely`], a restricted unpickler that rebuilds tensors and plain containers, turns
every other pickled class (omegaconf, fairseq, enums, ...) into inert [`InertObject`] data without
importing its module, and refuses files that reference functions a weights file has no use for
(`os.system`, `builtins.eval`, `subprocess.Popen`, ...), raising [`UnsafeCheckpointError`].

Command line (`llm_aac/convert_eat.py`)::

    llm-aac convert-eat EAT-base_epoch30_finetune_AS2M.pt eat-base-as2m/
    llm-aac convert-eat path/to/EAT-base_epoch30_pretrain/ eat-base/

`OUT_DIR` then loads with `AutoModel.from_pretrained(OUT_DIR)` (and
`AutoModelForAudioClassification` for fine-tuned sources), next to the matching fbank feature
extractor (`AutoFeatureExtractor.from_pretrained(OUT_DIR)`) when that class is available.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import torch

from .configuration_eat import EATConfig
from .modeling_eat import EATForAudioClassification, EATModel, build_2d_sincos_positions

logger = logging.getLogger(__name__)


# -- safe checkpoint loading -----------------------------------------------------------------------


class UnsafeCheckpointError(ValueError):
    """A pickle that references code a weights file has no reason to call."""


class EATConversionError(ValueError):
    """A checkpoint that is not an EAT model this converter understands."""


class InertObject:
    """Stand-in for a pickled object whose class is not on the allow-list.

    Nothing of the original class runs: construction arguments, pickled state and list / dict items
    are stored as plain data (`pickled_args`, `pickled_state`, `pickled_items`). The original class
    is named by `pickled_class` (`"module.QualifiedName"`).
    """

    pickled_class = "?"

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.pickled_args = args
        obj.pickled_kwargs = kwargs
        obj.pickled_state = None
        obj.pickled_items = []
        return obj

    def __init__(self, *args, **kwargs):
        self.pickled_args = args
        self.pickled_kwargs = kwargs

    def __setstate__(self, state):
        self.pickled_state = state

    # Pickles of list / dict subclasses replay their items through these.
    def append(self, item):
        self.pickled_items.append(item)

    def extend(self, items):
        self.pickled_items.extend(items)

    def __setitem__(self, key, value):
        self.pickled_items.append((key, value))

    def __repr__(self) -> str:
        return f"<inert {self.pickled_class}>"


# Modules whose functions can touch the system, run code or import more code. A reference to any of
# their names (outside the allow-list below) marks the pickle as hostile.
_FORBIDDEN_MODULE_ROOTS = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib", "runpy", "code", "codeop",
    "ctypes", "pty", "webbrowser", "pickle", "_pickle", "marshal", "multiprocessing", "signal", "builtins",
    "__builtin__", "io", "_io", "tempfile", "asyncio", "threading", "_thread", "functools", "operator",
    "types", "inspect", "pdb", "bdb", "platform", "commands", "popen2", "pathlib", "glob", "zipimport",
    "cProfile", "profile", "timeit", "trace", "urllib", "http", "ftplib", "smtplib", "telnetlib",
    "torch", "dill", "cloudpickle", "joblib", "sqlite3", "posixpath", "ntpath", "select", "selectors",
})


def _allowed_globals() -> dict[str, Any]:
    allowed: dict[str, Any] = {
        "collections.OrderedDict": OrderedDict,
        "collections.defaultdict": defaultdict,
        "collections.Counter": Counter,
        "collections.deque": deque,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        # protocol-2 pickles encode bytes as `_codecs.encode(text, "latin1")`
        "_codecs.encode": __import__("codecs").encode,
        "copyreg._reconstructor": __import__("copyreg")._reconstructor,
    }
    for name in ("set", "frozenset", "dict", "list", "tuple", "int", "float", "complex", "bool", "str", "bytes",
                 "bytearray", "slice", "range", "object"):
        allowed[f"builtins.{name}"] = getattr(__import__("builtins"), name)
        allowed[f"__builtin__.{name}"] = allowed[f"builtins.{name}"]
    for module, names in (
        (torch._utils, ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                        "_rebuild_parameter_with_state", "_rebuild_meta_tensor_no_storage")),
        (torch._tensor, ("_rebuild_from_type_v2",)),
    ):
        for name in names:
            if hasattr(module, name):
                allowed[f"{module.__name__}.{name}"] = getattr(module, name)
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()
_INERT_CLASSES: dict[str, type] = {}


def _inert_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _INERT_CLASSES:
        _INERT_CLASSES[key] = type(name.split(".")[-1], (InertObject,), {"pickled_class": key})
    return _INERT_CLASSES[key]


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves pickled globals without importing anything (see module docstring)."""

    source = "checkpoint"

    def find_class(self, module: str, name: str):
        key = f"{module}.{name}"
        if key in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[key]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.split(".")[0] in _FORBIDDEN_MODULE_ROOTS:
            raise UnsafeCheckpointError(
                f"Refusing to load {self.source}: its pickle references {key}, which a weights file has no "
                "reason to call (a crafted checkpoint can use it to run code). Only tensors, plain containers "
                "and inert config objects are accepted."
            )
        return _inert_class(module, name)


def _restricted_pickle_module(source: str) -> SimpleNamespace:
    """A stand-in for the `pickle` module that `torch.load(pickle_module=...)` accepts."""

    class Unpickler(_RestrictedUnpickler):
        pass

    Unpickler.source = source

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    return SimpleNamespace(__name__="eat_restricted_pickle", Unpickler=Unpickler, load=load,
                           UnpicklingError=pickle.UnpicklingError)


def load_checkpoint_safely(path: str | os.PathLike) -> Any:
    """`torch.load` a `.pt` / `.bin` file on CPU without executing pickled code.

    Tensors, `OrderedDict`s and builtin containers are rebuilt; any other pickled class becomes an
    [`InertObject`] (its module is never imported); references to code such as `os.system` raise
    [`UnsafeCheckpointError`].
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module(path))
    except UnsafeCheckpointError:
        raise
    except RuntimeError as err:
        if "pickle_module" in str(err):
            raise RuntimeError(
                "TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, which forbids the restricted unpickler this converter "
                "uses to read fairseq checkpoints safely; unset it for the conversion"
            ) from err
        raise EATConversionError(f"{path} is not a readable PyTorch checkpoint: {err}") from err
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as err:
        raise EATConversionError(f"{path} is not a readable PyTorch checkpoint: {err}") from err


def inert_to_plain(obj: Any) -> Any:
    """Best-effort plain-Python view of inert pickled config objects (omegaconf nodes, enums, Namespaces)."""
    if isinstance(obj, InertObject):
        state = obj.pickled_state
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        if isinstance(state, dict):
            if "_content" in state:  # omegaconf DictConfig / ListConfig
                return inert_to_plain(state["_content"])
            if "_val" in state:  # omegaconf value nodes
                return inert_to_plain(state["_val"])
            if "_value_" in state:
                return inert_to_plain(state["_value_"])
            if not obj.pickled_args:  # e.g. argparse.Namespace
                return {k: inert_to_plain(v) for k, v in state.items() if not k.startswith("_")}
        if len(obj.pickled_args) == 1 and not obj.pickled_items:  # Enum members pickle as Class(value)
            return inert_to_plain(obj.pickled_args[0])
        return obj
    if isinstance(obj, Mapping):
        return {k: inert_to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [inert_to_plain(v) for v in obj]
    return obj


# -- key renaming ------------------------------------------------------------------------------------

_BLOCK_RENAMES = {
    "norm1": "post_attention_layernorm",
    "attn.qkv": "attention.qkv",
    "attn.proj": "attention.proj",
    "norm2": "post_mlp_layernorm",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)$")

# Official (fairseq) encoder names without the `model.` prefix of fine-tuned checkpoints.
_OFFICIAL_RENAMES = {
    "modality_encoders.IMAGE.local_encoder.proj.weight": "embeddings.patch_embedding.weight",
    "modality_encoders.IMAGE.local_encoder.proj.bias": "embeddings.patch_embedding.bias",
    "modality_encoders.IMAGE.extra_tokens": "embeddings.cls_token",
    "modality_encoders.IMAGE.fixed_positional_encoder.positions": "embeddings.position_embeddings",
    "modality_encoders.IMAGE.context_encoder.norm.weight": "encoder.pre_norm.weight",
    "modality_encoders.IMAGE.context_encoder.norm.bias": "encoder.pre_norm.bias",
}
# HF-port names without its `model.` prefix.
_PORT_RENAMES = {
    "local_encoder.proj.weight": "embeddings.patch_embedding.weight",
    "local_encoder.proj.bias": "embeddings.patch_embedding.bias",
    "extra_tokens": "embeddings.cls_token",
    "fixed_positional_encoder.positions": "embeddings.position_embeddings",
    "pre_norm.weight": "encoder.pre_norm.weight",
    "pre_norm.bias": "encoder.pre_norm.bias",
}
_HEAD_RENAMES = {
    "fc_norm.weight": "fc_norm.weight",
    "fc_norm.bias": "fc_norm.bias",
    "head.weight": "classifier.weight",
    "head.bias": "classifier.bias",
}
# Pretraining-only parts of data2vec_multi / EAT: the CNN decoder, the EMA teacher, precomputed
# masks, and the optional heads of other data2vec 2.0 objectives.
_PRETRAINING_ONLY = re.compile(
    r"^(_ema(\.|$)|modality_encoders\.IMAGE\.decoder\.|modality_encoders\.IMAGE\.encoder_mask$"
    r"|shared_decoder\.|recon_proj\.|cls_proj\.|center$)"
)


def _rename(key: str, encoder_renames: Mapping[str, str]) -> str | None:
    if key in encoder_renames:
        return encoder_renames[key]
    match = _BLOCK_KEY.match(key)
    if match:
        index, module, kind = match.groups()
        return f"encoder.layers.{index}.{_BLOCK_RENAMES[module]}.{kind}"
    return None


def _rename_state_dict(
    state_dict: Mapping[str, Any], encoder_prefix: str, encoder_renames: Mapping[str, str], source: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """Split a source state dict into (encoder tensors, head tensors, dropped keys); unknown keys raise."""
    encoder, head, dropped, unexpected = {}, {}, [], []
    for key, value in state_dict.items():
        if key in _HEAD_RENAMES:
            head[_HEAD_RENAMES[key]] = value
            continue
        inner = key[len(encoder_prefix):] if key.startswith(encoder_prefix) else None
        if inner is None:
            unexpected.append(key)
            continue
        if _PRETRAINING_ONLY.match(inner):
            dropped.append(key)
            continue
        new_key = _rename(inner, encoder_renames)
        if new_key is None:
            unexpected.append(key)
        else:
            encoder[new_key] = value
    if unexpected:
        raise EATConversionError(
            f"{source}: tensors that EAT has no place for: {sorted(unexpected)}"
        )
    not_tensors = sorted(k for k, v in {**encoder, **head}.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise EATConversionError(f"{source}: entries that are not tensors: {not_tensors}")
    return encoder, head, dropped


def _infer_config(
    encoder: Mapping[str, torch.Tensor],
    head: Mapping[str, torch.Tensor],
    *,
    source: str,
    num_attention_heads: int | None,
    num_mel_bins: int,
    layer_norm_eps: float,
    mlp_ratio: float | None = None,
) -> dict[str, Any]:
    """EATConfig fields from tensor shapes (heads and bins cannot be read from weights)."""

    def need(key: str) -> torch.Tensor:
        if key not in encoder:
            raise EATConversionError(f"{source}: missing encoder tensor {key}")
        return encoder[key]

    proj = need("embeddings.patch_embedding.weight")
    if proj.ndim != 4 or proj.shape[1] != 1 or proj.shape[2] != proj.shape[3]:
        raise EATConversionError(
            f"{source}: patch projection has shape {tuple(proj.shape)}; EAT expects [hidden, 1, p, p]"
        )
    hidden_size, patch_size = int(proj.shape[0]), int(proj.shape[2])
    cls = need("embeddings.cls_token")
    if tuple(cls.shape) != (1, 1, hidden_size):
        raise EATConversionError(
            f"{source}: extra_tokens has shape {tuple(cls.shape)}; this converter supports exactly one CLS token "
            f"(1, 1, {hidden_size})"
        )
    layer_indices = sorted({int(k.split(".")[2]) for k in encoder if k.startswith("encoder.layers.")})
    num_layers = len(layer_indices)
    if layer_indices != list(range(num_layers)):
        raise EATConversionError(f"{source}: block indices are not contiguous: {layer_indices}")
    if num_layers == 0:
        raise EATConversionError(f"{source}: no transformer blocks found")
    intermediate_size = int(need("encoder.layers.0.mlp.fc1.weight").shape[0])
    if mlp_ratio is not None and intermediate_size != int(hidden_size * mlp_ratio):
        raise EATConversionError(
            f"{source}: mlp.fc1 has {intermediate_size} outputs but the checkpoint config says mlp_ratio={mlp_ratio}"
        )
    if num_attention_heads is None:
        # Not recoverable from weights; every released EAT uses 64-channel heads (768/12, 1024/16).
        num_attention_heads = hidden_size // 64
        logger.warning("%s: number of attention heads not recorded; assuming %d (head size 64)", source,
                       num_attention_heads)
    freq_patches = num_mel_bins // patch_size
    positions = need("embeddings.position_embeddings")
    if positions.ndim != 3 or positions.shape[0] != 1 or positions.shape[2] != hidden_size \
            or positions.shape[1] % freq_patches:
        raise EATConversionError(
            f"{source}: positions have shape {tuple(positions.shape)}; expected (1, max_length * {freq_patches}, "
            f"{hidden_size}) for {num_mel_bins} bins"
        )
    max_length = positions.shape[1] // freq_patches
    settings = dict(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=int(num_attention_heads),
        intermediate_size=intermediate_size,
        patch_size=patch_size,
        num_mel_bins=num_mel_bins,
        max_length=int(max_length),
        layer_norm_eps=float(layer_norm_eps),
        qkv_bias="encoder.layers.0.attention.qkv.bias" in encoder,
    )
    if head:
        if "classifier.weight" not in head or "fc_norm.weight" not in head:
            raise EATConversionError(f"{source}: incomplete classification head, found only {sorted(head)}")
        settings["num_labels"] = int(head["classifier.weight"].shape[0])
    return settings


def _check_positions(positions: torch.Tensor, config: EATConfig, source: str) -> None:
    """EAT's positions are a fixed sin-cos table: anything else means a different model."""
    expected = build_2d_sincos_positions(config.hidden_size, config.max_length, config.num_freq_patches)
    error = float((positions[0].float() - expected).abs().max())
    if error > 1e-3:
        raise EATConversionError(
            f"{source}: the stored positions differ from EAT's 2-D sin-cos table by up to {error:.3g}; "
            "wrong num_mel_bins, or not an EAT checkpoint"
        )


def _build_model(
    encoder: dict[str, torch.Tensor],
    head: dict[str, torch.Tensor],
    settings: dict[str, Any],
    *,
    source: str,
    encoder_only: bool,
    problem_type: str | None,
    id2label: Mapping[int, str] | None,
) -> EATModel | EATForAudioClassification:
    with_head = bool(head) and not encoder_only
    if not with_head:
        settings.pop("num_labels", None)
    else:
        if problem_type is None:
            # AudioSet (527 classes) is multi-label; EAT's ESC-50 / SPC-2 heads are single-label.
            problem_type = "multi_label_classification" if settings["num_labels"] == 527 else (
                "single_label_classification")
        settings["problem_type"] = problem_type
        if id2label is not None:
            if len(id2label) != settings["num_labels"]:
                raise EATConversionError(
                    f"{source}: {len(id2label)} label names for a head with {settings['num_labels']} outputs"
                )
            settings["id2label"] = {int(k): str(v) for k, v in id2label.items()}
            settings["label2id"] = {v: k for k, v in settings["id2label"].items()}
    config = EATConfig(**settings)
    _check_positions(encoder["embeddings.position_embeddings"], config, source)

    model_class = EATForAudioClassification if with_head else EATModel
    model = model_class(config)
    weights = dict(encoder)
    if with_head:
        weights = {f"eat.{k}": v for k, v in encoder.items()}
        weights.update(head)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise EATConversionError(f"{source}: missing tensors {missing}; unexpected tensors {unexpected}")
    bad_shapes = [
        f"{k}: {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in weights.items() if v.shape != expected[k].shape
    ]
    if bad_shapes:
        raise EATConversionError(f"{source}: tensors with unexpected shapes: {bad_shapes}")
    model.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()}, strict=True)
    return model.eval()


def _official_model_settings(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Model settings recorded in a fairseq checkpoint's pickled config, when readable."""
    cfg = inert_to_plain(checkpoint.get("cfg"))
    if not isinstance(cfg, Mapping):
        args = inert_to_plain(checkpoint.get("args"))
        cfg = {"model": args} if isinstance(args, Mapping) else {}
    model_cfg = cfg.get("model") if isinstance(cfg.get("model"), Mapping) else {}
    pretrained = model_cfg.get("pretrained_model_args")
    pretrained_model = pretrained.get("model") if isinstance(pretrained, Mapping) else None
    encoder_cfg = pretrained_model if isinstance(pretrained_model, Mapping) else model_cfg
    image_cfg = {}
    modalities = encoder_cfg.get("modalities")
    if isinstance(modalities, Mapping) and isinstance(modalities.get("image"), Mapping):
        image_cfg = modalities["image"]
    return {
        "num_heads": encoder_cfg.get("num_heads"),
        "norm_eps": model_cfg.get("norm_eps") or encoder_cfg.get("norm_eps"),
        "mlp_ratio": encoder_cfg.get("mlp_ratio"),
        "layer_norm_first": encoder_cfg.get("layer_norm_first"),
        "in_chans": image_cfg.get("in_chans"),
        "prenet_depth": image_cfg.get("prenet_depth"),
        "use_alibi_encoder": image_cfg.get("use_alibi_encoder"),
        "num_extra_tokens": image_cfg.get("num_extra_tokens"),
    }


def _check_official_settings(recorded: Mapping[str, Any], source: str) -> None:
    problems = []
    if recorded.get("layer_norm_first") is True:
        problems.append("layer_norm_first=True (pre-LN blocks; EAT is post-LN)")
    if recorded.get("in_chans") not in (None, 1):
        problems.append(f"in_chans={recorded['in_chans']} (EAT reads 1-channel spectrograms)")
    if recorded.get("prenet_depth") not in (None, 0):
        problems.append(f"prenet_depth={recorded['prenet_depth']} (EAT has no modality-specific blocks)")
    if recorded.get("use_alibi_encoder") is True:
        problems.append("use_alibi_encoder=True (EAT uses no ALiBi bias)")
    if recorded.get("num_extra_tokens") not in (None, 1):
        problems.append(f"num_extra_tokens={recorded['num_extra_tokens']} (EAT has one CLS token)")
    if problems:
        raise EATConversionError(f"{source}: not an EAT configuration: " + "; ".join(problems))


def convert_official_checkpoint(
    checkpoint: Mapping[str, Any],
    *,
    source: str = "checkpoint",
    num_attention_heads: int | None = None,
    num_mel_bins: int = 128,
    encoder_only: bool = False,
    problem_type: str | None = None,
    id2label: Mapping[int, str] | None = None,
) -> EATModel | EATForAudioClassification:
    """Build our model from a loaded fairseq EAT checkpoint (the dict `torch.load` returns)."""
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        found = sorted(checkpoint) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise EATConversionError(f"{source}: no fairseq weights under ckpt['model'] (found {found})")
    state_dict = checkpoint["model"]
    finetuned = any(k.startswith("model.") for k in state_dict)
    encoder, head, dropped = _rename_state_dict(
        state_dict, "model." if finetuned else "", _OFFICIAL_RENAMES, source
    )
    if dropped:
        logger.info("%s: dropped %d pretraining-only tensors", source, len(dropped))
    recorded = _official_model_settings(checkpoint)
    _check_official_settings(recorded, source)
    settings = _infer_config(
        encoder, head, source=source,
        num_attention_heads=num_attention_heads or recorded.get("num_heads"),
        num_mel_bins=num_mel_bins,
        layer_norm_eps=recorded.get("norm_eps") or 1e-6,
        mlp_ratio=recorded.get("mlp_ratio"),
    )
    return _build_model(encoder, head, settings, source=source, encoder_only=encoder_only,
                        problem_type=problem_type, id2label=id2label)


def convert_hf_port_folder(
    folder: str | os.PathLike,
    *,
    encoder_only: bool = False,
    problem_type: str | None = None,
    id2label: Mapping[int, str] | None = None,
) -> EATModel | EATForAudioClassification:
    """Build our model from a folder in the `worstchan/EAT-*` remote-code layout."""
    folder = os.fspath(folder)
    config_path = os.path.join(folder, "config.json")
    with open(config_path, encoding="utf-8") as handle:
        port = json.load(handle)
    if "embed_dim" not in port or "depth" not in port:
        raise EATConversionError(
            f"{config_path} has no `embed_dim` / `depth`: not the EAT HF-port layout (found {sorted(port)})"
        )
    problems = []
    patch_size = port.get("patch_size", 16)
    if port.get("stride", patch_size) != patch_size:
        problems.append(f"stride={port.get('stride')} != patch_size={patch_size} (overlapping patches)")
    if port.get("in_chans", 1) != 1:
        problems.append(f"in_chans={port['in_chans']}")
    if port.get("layer_norm_first", False):
        problems.append("layer_norm_first=True")
    if not port.get("fixed_positions", True):
        problems.append("fixed_positions=False")
    if not port.get("norm_affine", True):
        problems.append("norm_affine=False")
    if problems:
        raise EATConversionError(f"{config_path}: unsupported EAT settings: " + "; ".join(problems))

    safetensors_path = os.path.join(folder, "model.safetensors")
    bin_path = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(safetensors_path):
        from safetensors.torch import load_file

        state_dict = load_file(safetensors_path, device="cpu")
        source = safetensors_path
    elif os.path.isfile(bin_path):
        state_dict = load_checkpoint_safely(bin_path)
        source = bin_path
        if not isinstance(state_dict, Mapping):
            raise EATConversionError(f"{bin_path}: expected a state dict, found {type(state_dict).__name__}")
    else:
        raise FileNotFoundError(f"{folder} has neither model.safetensors nor pytorch_model.bin")

    encoder, head, _ = _rename_state_dict(
        {k[len("model."):] if k.startswith("model.") else k: v for k, v in state_dict.items()},
        "",
        _PORT_RENAMES,
        source,
    )
    if port.get("model_variant") == "finetune" and not head:
        raise EATConversionError(f"{source}: config says model_variant='finetune' but no fc_norm / head tensors")
    settings = _infer_config(
        encoder, head, source=source,
        num_attention_heads=port.get("num_heads"),
        num_mel_bins=int(port.get("mel_bins", 128)),
        layer_norm_eps=float(port.get("norm_eps", 1e-6)),
        mlp_ratio=port.get("mlp_ratio"),
    )
    if settings["num_hidden_layers"] != port["depth"] or settings["hidden_size"] != port["embed_dim"]:
        raise EATConversionError(
            f"{source}: weights have {settings['num_hidden_layers']} blocks of width {settings['hidden_size']}, "
            f"config.json says depth={port['depth']}, embed_dim={port['embed_dim']}"
        )
    if "max_length" in port and settings["max_length"] != port["max_length"]:
        raise EATConversionError(
            f"{source}: positions cover {settings['max_length']} time patches, config.json says "
            f"max_length={port['max_length']}"
        )
    return _build_model(encoder, head, settings, source=source, encoder_only=encoder_only,
                        problem_type=problem_type, id2label=id2label)


def read_audioset_labels(path: str | os.PathLike) -> dict[int, str]:
    """`index,mid,display_name` CSV (AudioSet's `class_labels_indices.csv`) -> {index: display_name}."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path} is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    if "index" not in header or "display_name" not in header:
        raise ValueError(f"{path}: expected columns index, mid, display_name; found {rows[0]}")
    index_col, name_col = header.index("index"), header.index("display_name")
    labels = {int(row[index_col]): row[name_col] for row in rows[1:] if row}
    if sorted(labels) != list(range(len(labels))):
        raise ValueError(f"{path}: label indices are not 0..{len(labels) - 1}")
    return labels


def _fbank_feature_extractor(config: EATConfig):
    """The fbank extractor matching EAT's inputs, when the project's extractor is available."""
    try:
        from .feature_extraction_llm_aac import LLMAACFeatureExtractor
    except ImportError:
        return None
    return LLMAACFeatureExtractor(feature_type="fbank", num_mel_bins=config.num_mel_bins)


def convert_eat_checkpoint(
    source: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    *,
    num_attention_heads: int | None = None,
    num_mel_bins: int = 128,
    encoder_only: bool = False,
    problem_type: str | None = None,
    labels_csv: str | os.PathLike | None = None,
    save_dtype: torch.dtype = torch.float32,
    save_feature_extractor: bool = True,
) -> EATModel | EATForAudioClassification:
    """Convert an official `.pt` or an HF-port folder; with `output_dir`, save a `save_pretrained` folder.

    Args:
        source: fairseq checkpoint file or HF-port folder.
        output_dir: where to save (model safetensors, config, fbank feature extractor); must not hold a model.
        num_attention_heads: override when the checkpoint does not record it (default: its config,
            else `hidden_size // 64`).
        num_mel_bins: input bins of the source model (all released EAT models: 128; the HF port records it).
        encoder_only: keep only the encoder of a fine-tuned checkpoint.
        problem_type: head loss (`multi_label_classification` / `single_label_classification`); default
            multi-label for 527 AudioSet classes, else single-label.
        labels_csv: AudioSet-style `index,mid,display_name` CSV giving `id2label`.
        save_dtype: dtype of the saved weights.
        save_feature_extractor: also save the matching fbank `LLMAACFeatureExtractor`.
    """
    source = os.fspath(source)
    if output_dir is not None and os.path.isfile(os.path.join(output_dir, "config.json")):
        raise FileExistsError(f"{output_dir} already holds a model (config.json); choose an empty folder")
    id2label = read_audioset_labels(labels_csv) if labels_csv is not None else None
    if os.path.isdir(source):
        model = convert_hf_port_folder(source, encoder_only=encoder_only, problem_type=problem_type,
                                       id2label=id2label)
        if num_mel_bins != model.config.num_mel_bins and num_mel_bins != 128:
            raise EATConversionError(
                f"--num-mel-bins {num_mel_bins} conflicts with the port's mel_bins={model.config.num_mel_bins}"
            )
    elif os.path.isfile(source):
        checkpoint = load_checkpoint_safely(source)
        model = convert_official_checkpoint(
            checkpoint, source=source, num_attention_heads=num_attention_heads, num_mel_bins=num_mel_bins,
            encoder_only=encoder_only, problem_type=problem_type, id2label=id2label,
        )
    else:
        raise FileNotFoundError(f"EAT checkpoint not found: {source}")

    if output_dir is not None:
        output_dir = os.fspath(output_dir)
        os.makedirs(output_dir, exist_ok=True)
        to_save = model if save_dtype == torch.float32 else model.to(save_dtype)
        to_save.save_pretrained(output_dir)
        if save_dtype != torch.float32:
            model.to(torch.float32)
        if save_feature_extractor:
            extractor = _fbank_feature_extractor(model.config)
            if extractor is None:
                logger.warning("feature_extraction_llm_aac is not available: no feature extractor saved")
            else:
                extractor.save_pretrained(output_dir)
    return model

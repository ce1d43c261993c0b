"""Convert laion-clap checkpoints (`630k-audioset-best.pt`, ...) to transformers `ClapModel` weights.

laion-clap's `CLAP` module holds an HTS-AT audio tower (`audio_branch`, a Swin transformer over
log-mel "images"), a Hugging Face `RobertaModel` (`text_branch`), two-layer MLP projections
(`audio_projection`, `text_projection`: Linear -> ReLU -> Linear) and two temperatures
(`logit_scale_a`, `logit_scale_t`). transformers' `ClapModel` is the same network with other
parameter names; this module renames the tensors, splits the fused `qkv` projections, infers the
`ClapConfig` from tensor shapes, and drops what `ClapModel` does not have:

* the STFT / mel filter buffers (`spectrogram_extractor`, `logmel_extractor`): the features come
  from `ClapFeatureExtractor` instead;
* the AudioSet classification head of HTS-AT (`tscam_conv`, `head`), unused by CLAP;
* `audio_transform` / `text_transform`, MLPs used only by laion-clap's training loss;
* the shifted-window masks (`attn_mask`), which `ClapModel` rebuilds.

The checkpoint is read with `torch.load(weights_only=True)`: no pickled code is executed. The
`laion_clap` package is not needed (it cannot be installed next to numpy >= 2).

Command line::

    python -m modeling_llm_aac.convert_laion_clap 630k-audioset-best.pt OUT_DIR --tokenizer roberta-base
    llm-aac convert-clap 630k-audioset-best.pt OUT_DIR --tokenizer roberta-base

OUT_DIR then loads with `ClapModel.from_pretrained(OUT_DIR)` and `load_clap_scorer(OUT_DIR)`.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

import torch

# Sub-modules of laion-clap's model that have no counterpart in `ClapModel` (see module docstring).
_DROPPED_PREFIXES = (
    "audio_branch.spectrogram_extractor.",
    "audio_branch.logmel_extractor.",
    "audio_branch.tscam_conv.",
    "audio_branch.head.",
    "audio_transform.",
    "text_transform.",
)
# Buffers that `ClapModel` derives from its config; taken from the checkpoint when present.
_DERIVED_BUFFERS = ("position_ids", "token_type_ids", "relative_position_index", "num_batches_tracked")

_BLOCK_RENAMES = (
    # (laion-clap name inside `layers.{i}.blocks.{j}.`, ClapModel name)
    ("norm1.", "layernorm_before."),
    ("norm2.", "layernorm_after."),
    ("attn.proj.", "attention.output.dense."),
    ("attn.relative_position_bias_table", "attention.self.relative_position_bias_table"),
    ("attn.relative_position_index", "attention.self.relative_position_index"),
    ("mlp.fc1.", "intermediate.dense."),
    ("mlp.fc2.", "output.dense."),
)
_BLOCK_KEY = re.compile(r"^(layers\.\d+\.blocks\.\d+\.)(.+)$")
_PROJECTION_KEY = re.compile(r"^(audio|text)_projection\.(\d+)\.(weight|bias)$")


class LaionClapConversionError(ValueError):
    """A checkpoint that is not a laion-clap CLAP model this converter understands."""


def load_laion_clap_state_dict(checkpoint_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the model weights of a laion-clap `.pt` file without executing pickled code.

    Handles the training-checkpoint layout (`{"epoch", "name", "state_dict", "optimizer"}`) and a
    bare state dict, and strips the `module.` prefix that DistributedDataParallel leaves.
    """
    path = os.fspath(checkpoint_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"laion-clap checkpoint {path!r} does not exist.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # The weights-only unpickler names the class it refused ("Unsupported global: ...");
        # anything else is a file that is not a pickle at all.
        if "global" not in str(err).lower():
            raise LaionClapConversionError(f"{path!r} is not a readable torch checkpoint: {err}") from None
        refused = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(err), flags=re.IGNORECASE)
        raise LaionClapConversionError(
            f"Refusing to load {path!r}: it pickles "
            + (f"{refused.group(1)!r}, " if refused else "objects ")
            + "not just tensors and plain containers, and unpickling that could run arbitrary code."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise LaionClapConversionError(f"{path!r} is not a readable torch checkpoint: {err}") from None
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise LaionClapConversionError(f"{path!r} holds no state dict (got {type(checkpoint).__name__}).")
    state_dict = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            raise LaionClapConversionError(f"{path!r}: entry {key!r} is a {type(value).__name__}, not a tensor.")
        state_dict[key[len("module."):] if key.startswith("module.") else key] = value
    return state_dict


def rename_laion_clap_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """laion-clap parameter names -> `ClapModel` parameter names (dropped tensors removed, fused
    `qkv` split into `query` / `key` / `value`). Unknown keys raise an error that lists them."""
    renamed: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if key.startswith(_DROPPED_PREFIXES):
            continue
        if key in ("logit_scale_a", "logit_scale_t"):
            renamed[key] = value
        elif key.startswith("text_branch."):
            renamed["text_model." + key[len("text_branch."):]] = value
        elif (match := _PROJECTION_KEY.match(key)) is not None:
            tower, index, kind = match.groups()
            layer = {"0": "linear1", "2": "linear2"}.get(index)
            if layer is None:
                unknown.append(key)
                continue
            renamed[f"{tower}_projection.{layer}.{kind}"] = value
        elif key.startswith("audio_branch."):
            for new_key, new_value in _rename_audio_key(key[len("audio_branch."):], value):
                if new_key is None:
                    unknown.append(key)
                else:
                    renamed["audio_model.audio_encoder." + new_key] = new_value
        else:
            unknown.append(key)
    if unknown:
        raise LaionClapConversionError(
            f"{len(unknown)} checkpoint keys have no ClapModel counterpart: {sorted(unknown)[:20]}"
            + (" ..." if len(unknown) > 20 else "")
        )
    return renamed


def _rename_audio_key(key: str, value: torch.Tensor):
    if key.startswith("bn0."):
        yield "batch_norm." + key[len("bn0."):], value
        return
    if key.startswith(("patch_embed.", "norm.")) or re.match(r"^layers\.\d+\.downsample\.", key):
        # Same names: patch_embed.{proj,norm,mel_conv2d,fusion_model.*}, final norm, patch merging.
        yield key, value
        return
    match = _BLOCK_KEY.match(key)
    if match is None:
        yield None, value
        return
    prefix, rest = match.groups()
    if rest == "attn_mask":
        return  # rebuilt by ClapModel from the input resolution
    if rest in ("attn.qkv.weight", "attn.qkv.bias"):
        kind = rest.rsplit(".", 1)[1]
        query, key_, value_ = value.chunk(3, dim=0)  # laion-clap reshapes qkv as (3, heads, head_dim)
        yield f"{prefix}attention.self.query.{kind}", query
        yield f"{prefix}attention.self.key.{kind}", key_
        yield f"{prefix}attention.self.value.{kind}", value_
        return
    for old, new in _BLOCK_RENAMES:
        if rest.startswith(old):
            yield prefix + new + rest[len(old):], value
            return
    yield None, value


def clap_config_from_laion_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    spec_size: int | None = None,
    patch_stride: int | None = None,
    text_num_attention_heads: int | None = None,
    text_layer_norm_eps: float = 1e-5,
):
    """Infer the `ClapConfig` of a laion-clap state dict (original names) from its tensor shapes.

    What shapes cannot tell is taken from laion-clap's HTS-AT / RoBERTa recipes and can be overridden:
    `spec_size` (the Swin input size; inferred from a shifted-window mask when the checkpoint has
    one, else 256), `patch_stride` (default: the patch size, 4 in every laion-clap model),
    `text_num_attention_heads` (default hidden_size // 64, 12 for roberta-base) and
    `text_layer_norm_eps` (roberta-base: 1e-5).
    """
    from transformers import ClapConfig

    def need(key: str) -> torch.Tensor:
        if key not in state_dict:
            raise LaionClapConversionError(
                f"Checkpoint lacks {key!r}; it does not look like a laion-clap HTS-AT + RoBERTa CLAP model."
            )
        return state_dict[key]

    if "text_branch.embeddings.word_embeddings.weight" not in state_dict and any(
        k.startswith(("token_embedding.", "text_branch.resblocks.")) for k in state_dict
    ):
        raise LaionClapConversionError(
            "This checkpoint uses laion-clap's CLIP-style text transformer; ClapModel supports only the "
            "RoBERTa text tower (tmodel='roberta')."
        )
    if any(k.startswith("audio_branch.mel_conv1d.") for k in state_dict):
        raise LaionClapConversionError(
            "This checkpoint uses a 1-D fusion variant (aff_1d / iaff_1d / daf_1d), which ClapModel does "
            "not implement; only non-fusion and 2-D fusion (aff_2d) checkpoints convert."
        )
    if any(k.startswith("audio_branch.conv_block") for k in state_dict):
        raise LaionClapConversionError("PANN audio towers are not supported by ClapModel; only HTS-AT ones.")

    proj = need("audio_branch.patch_embed.proj.weight")  # [embed_dim, in_chans, patch, patch]
    embed_dim, in_channels, patch_size = proj.shape[0], proj.shape[1], proj.shape[2]
    enable_fusion = any(k.startswith("audio_branch.patch_embed.fusion_model.") for k in state_dict)
    fusion_type = "channel_map" if (enable_fusion and in_channels == 4) else None

    depths, heads = [], []
    layer = 0
    while any(k.startswith(f"audio_branch.layers.{layer}.blocks.") for k in state_dict):
        blocks = {
            int(k.split(".")[4]) for k in state_dict if k.startswith(f"audio_branch.layers.{layer}.blocks.")
        }
        depths.append(max(blocks) + 1)
        heads.append(need(f"audio_branch.layers.{layer}.blocks.0.attn.relative_position_bias_table").shape[1])
        layer += 1
    if not depths:
        raise LaionClapConversionError("Checkpoint has no audio_branch.layers.*.blocks.*: not an HTS-AT tower.")
    table_rows = need("audio_branch.layers.0.blocks.0.attn.relative_position_bias_table").shape[0]
    window_size = (int(round(math.sqrt(table_rows))) + 1) // 2
    stride = int(patch_stride) if patch_stride is not None else int(patch_size)
    if spec_size is None:
        spec_size = 256
        mask = state_dict.get("audio_branch.layers.0.blocks.1.attn_mask")
        if mask is not None:  # [num_windows, w*w, w*w] on a square grid of spec_size / stride
            spec_size = int(round(math.sqrt(mask.shape[0]))) * window_size * stride
    fc1 = need("audio_branch.layers.0.blocks.0.mlp.fc1.weight")
    audio_projection = need("audio_projection.0.weight")  # [joint_dim, audio_hidden]
    projection_dim, audio_hidden = audio_projection.shape
    num_mel_bins = need("audio_branch.bn0.weight").shape[0]
    head = state_dict.get("audio_branch.head.weight")

    word_embeddings = need("text_branch.embeddings.word_embeddings.weight")
    vocab_size, text_hidden = word_embeddings.shape
    text_layers = len(
        {int(k.split(".")[3]) for k in state_dict if k.startswith("text_branch.encoder.layer.")}
    )
    text_heads = text_num_attention_heads or max(1, text_hidden // 64)
    if text_hidden % text_heads:
        raise LaionClapConversionError(
            f"text hidden size {text_hidden} is not divisible by {text_heads} attention heads; pass "
            "text_num_attention_heads."
        )

    audio_config = dict(
        spec_size=spec_size,
        num_mel_bins=num_mel_bins,
        patch_size=int(patch_size),
        patch_stride=[stride, stride],
        window_size=window_size,
        depths=depths,
        num_attention_heads=heads,
        patch_embeds_hidden_size=int(embed_dim),
        patch_embed_input_channels=int(in_channels // 4 if fusion_type == "channel_map" else in_channels),
        hidden_size=int(audio_hidden),
        projection_dim=int(projection_dim),
        mlp_ratio=fc1.shape[0] / fc1.shape[1],
        qkv_bias="audio_branch.layers.0.blocks.0.attn.qkv.bias" in state_dict,
        enable_patch_layer_norm="audio_branch.patch_embed.norm.weight" in state_dict,
        enable_fusion=enable_fusion,
        fusion_type=fusion_type,
        num_classes=int(head.shape[0]) if head is not None else 527,
        projection_hidden_act="relu",
        layer_norm_eps=1e-5,
    )
    text_config = dict(
        vocab_size=int(vocab_size),
        hidden_size=int(text_hidden),
        num_hidden_layers=text_layers,
        num_attention_heads=int(text_heads),
        intermediate_size=int(need("text_branch.encoder.layer.0.intermediate.dense.weight").shape[0]),
        max_position_embeddings=int(need("text_branch.embeddings.position_embeddings.weight").shape[0]),
        type_vocab_size=int(need("text_branch.embeddings.token_type_embeddings.weight").shape[0]),
        layer_norm_eps=text_layer_norm_eps,
        projection_dim=int(projection_dim),
        projection_hidden_act="relu",
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    return ClapConfig(text_config=text_config, audio_config=audio_config, projection_dim=int(projection_dim))


def convert_laion_clap_state_dict(state_dict: Mapping[str, torch.Tensor], **config_kwargs):
    """Build a `ClapModel` holding the weights of a laion-clap state dict (original names).

    Every `ClapModel` parameter must come from the checkpoint: a missing one (other than buffers
    the model derives itself) or a shape mismatch raises an error naming the keys.
    `config_kwargs` go to `clap_config_from_laion_state_dict`.
    """
    from transformers import ClapModel

    config = clap_config_from_laion_state_dict(state_dict, **config_kwargs)
    renamed = rename_laion_clap_state_dict(state_dict)
    model = ClapModel(config).eval()
    expected = model.state_dict()
    missing = [k for k in expected if k not in renamed and not k.endswith(_DERIVED_BUFFERS)]
    unexpected = [k for k in renamed if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(renamed[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in renamed
        if k in expected and renamed[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        raise LaionClapConversionError(
            "The checkpoint does not match the inferred ClapModel:"
            + (f"\n  missing: {missing[:20]}" if missing else "")
            + (f"\n  unexpected: {unexpected[:20]}" if unexpected else "")
            + (f"\n  shape mismatch: {mismatched[:20]}" if mismatched else "")
            + "\nPass spec_size= / text_num_attention_heads= if the checkpoint deviates from laion-clap's recipes."
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in renamed.items()}, strict=False)
    return model


def convert_laion_clap_checkpoint(
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    *,
    tokenizer: Any = None,
    **config_kwargs,
):
    """Convert a laion-clap `.pt` file to a `ClapModel`; with `output_dir`, also save the model,
    the matching `ClapFeatureExtractor` (and the tokenizer, when given: a tokenizer object or a
    folder / Hub id such as `roberta-base`) there, loadable by `load_clap_scorer(output_dir)`."""
    from .clap_scoring import default_clap_feature_extractor

    model = convert_laion_clap_state_dict(load_laion_clap_state_dict(checkpoint_path), **config_kwargs)
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        model.save_pretrained(output_dir)
        default_clap_feature_extractor(model.config).save_pretrained(output_dir)
        if tokenizer is not None:
            if isinstance(tokenizer, (str, os.PathLike)):
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(tokenizer)
            # laion-clap tokenises captions to at most 77 tokens.
            tokenizer.model_max_length = 77
            tokenizer.save_pretrained(output_dir)
    return model


# -- `llm-aac convert-clap` ---------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="laion-clap checkpoint (.pt), e.g. 630k-audioset-best.pt")
    parser.add_argument("output_dir", help="folder for the converted ClapModel")
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer folder or Hub id saved beside the model (laion-clap uses roberta-base)",
    )
    parser.add_argument("--spec-size", type=int, default=None, help="HTS-AT input size (default: inferred, else 256)")
    parser.add_argument("--text-num-attention-heads", type=int, default=None, help="default hidden_size // 64")


def main(args) -> int:
    model = convert_laion_clap_checkpoint(
        args.checkpoint,
        args.output_dir,
        tokenizer=args.tokenizer,
        spec_size=args.spec_size,
        text_num_attention_heads=args.text_num_attention_heads,
    )
    count = sum(p.numel() for p in model.parameters())
    print(f"Converted {args.checkpoint} -> {args.output_dir} ({count / 1e6:.1f} M parameters).")
    if args.tokenizer is None:
        print("No --tokenizer given: pass tokenizer='roberta-base' (or a local copy) when loading.")
    return 0


if __name__ == "__main__":
    import argparse
    import sys

    _parser = argparse.ArgumentParser(description="Convert a laion-clap checkpoint to a transformers ClapModel.")
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))

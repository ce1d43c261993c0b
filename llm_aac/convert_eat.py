"""`llm-aac convert-eat SRC OUT_DIR`: official EAT `.pt` or HF-port folder -> `save_pretrained` folder.

The conversion itself lives in the Hub-facing `modeling_llm_aac.convert_eat_checkpoint`; this module
only keeps torch / transformers out of `llm-aac --help`.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("source", help="official EAT .pt (pretrain or fine-tuned) or an HF-port folder")
    parser.add_argument("output_dir", help="new folder for the converted model (save_pretrained layout)")
    parser.add_argument("--num-attention-heads", type=int, default=None,
                        help="heads per block when the checkpoint does not record it (default hidden_size // 64)")
    parser.add_argument("--num-mel-bins", type=int, default=128, help="input bins of the source model (default 128)")
    parser.add_argument("--encoder-only", action="store_true",
                        help="drop the classification head of a fine-tuned model")
    parser.add_argument("--problem-type", choices=["multi_label_classification", "single_label_classification"],
                        default=None, help="head loss (default: multi-label for 527 AudioSet classes)")
    parser.add_argument("--labels-csv", default=None, help="AudioSet class_labels_indices.csv for id2label")
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="float32",
                        help="dtype of the saved weights")
    parser.add_argument("--no-feature-extractor", action="store_true",
                        help="do not save the fbank feature extractor")


def main(args) -> int:
    import torch

    from modeling_llm_aac.convert_eat_checkpoint import convert_eat_checkpoint

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    model = convert_eat_checkpoint(
        args.source,
        args.output_dir,
        num_attention_heads=args.num_attention_heads,
        num_mel_bins=args.num_mel_bins,
        encoder_only=args.encoder_only,
        problem_type=args.problem_type,
        labels_csv=args.labels_csv,
        save_dtype=dtypes[args.dtype],
        save_feature_extractor=not args.no_feature_extractor,
    )
    config = model.config
    count = sum(p.numel() for p in model.parameters())
    kind = type(model).__name__
    labels = f", {config.num_labels} labels ({config.problem_type})" if kind != "EATModel" else ""
    print(
        f"Converted {args.source} -> {args.output_dir}: {kind}, {config.num_hidden_layers} layers, width "
        f"{config.hidden_size}, {config.num_attention_heads} heads, max_length {config.max_length} time patches, "
        f"{count / 1e6:.1f} M parameters{labels}"
    )
    return 0

"""Train a byte-level BPE tokenizer on caption text and save it as a transformers fast tokenizer.

    # captions of 2,000 synthetic clips (10,000 captions), 2,000-token vocabulary
    python train/train_tokenizer.py --synthetic_clips 2000 --vocab_size 2000 --output_dir runs/tokenizer

    # human captions: AudioCaps / Clotho CSVs, text files, or a corpus folder
    python train/train_tokenizer.py --caption_files audiocaps/train.csv clotho_captions_development.csv \
        --vocab_size 8000 --output_dir runs/tokenizer

No hub tokenizer can be downloaded in the offline set-ups this project targets, so the tiny stand-in language
models get their own tokenizer. It is Llama-like in what the rest of the stack relies on: `<unk>` 0, `<s>` 1
(prepended to every encoded text, as Llama's tokenizer does), `</s>` 2, a separate `<pad>` 3, and the audio
placeholder `<audio>` 4 as a special token that is never split. Byte-level BPE (GPT-2 style, a space in
front of every word) needs no unknown token for any input. The processor's prompt template is added to the
training text so that its words get their own tokens.

Output: `tokenizer.json` and `tokenizer_config.json`, loadable with
`AutoTokenizer.from_pretrained(output_dir)`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

logger = logging.getLogger("train_tokenizer")

UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, PAD_TOKEN = "<unk>", "<s>", "</s>", "<pad>"
DEFAULT_AUDIO_TOKEN = "<audio>"
# Byte-level BPE starts from the 256 byte symbols.
BYTE_ALPHABET_SIZE = 256
# How often the prompt template is added to the training text: enough for its words to be merged.
PROMPT_REPEATS = 50


def train_caption_tokenizer(
    texts: Sequence[str],
    *,
    vocab_size: int = 2000,
    min_frequency: int = 2,
    lowercase: bool = False,
    audio_token: str = DEFAULT_AUDIO_TOKEN,
    prompt: str | None = None,
    model_max_length: int = 2048,
):
    """Trains a byte-level BPE tokenizer on `texts` and wraps it as a `PreTrainedTokenizerFast`.

    Args:
        texts: training captions (any text).
        vocab_size: vocabulary size including the 256 byte symbols and the special tokens; BPE stops
            earlier when no pair occurs `min_frequency` times.
        min_frequency: fewest occurrences of a pair for it to be merged.
        lowercase: lower-case all text before tokenizing (captions are then generated in lower case).
        audio_token: the audio placeholder, added as a special token.
        prompt: a prompt template (with `audio_token` inside) whose words are added to the training text;
            defaults to the processor's `DEFAULT_PROMPT`.
        model_max_length: stored as the tokenizer's maximum length.

    Returns:
        The tokenizer, with `bos/eos/unk/pad` tokens set and `audio_token` in `extra_special_tokens`.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from modeling_llm_aac.processing_llm_aac import DEFAULT_PROMPT

    specials = [UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, audio_token]
    if len(set(specials)) != len(specials):
        raise ValueError(f"audio_token {audio_token!r} collides with the other special tokens {specials[:4]}")
    smallest = BYTE_ALPHABET_SIZE + len(specials)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < smallest:
        raise ValueError(f"vocab_size must be an integer >= {smallest} (256 bytes + {len(specials)} special tokens), got {vocab_size!r}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be a positive integer, got {min_frequency!r}")
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("train_caption_tokenizer needs at least one non-empty text")

    prompt = DEFAULT_PROMPT if prompt is None else prompt
    prompt_text = " ".join(prompt.replace(audio_token, " ").split())

    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    steps = [normalizers.NFC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts) + [prompt_text] * PROMPT_REPEATS, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    # Like Llama's tokenizer: BOS in front, no EOS (the processor appends EOS after captions itself).
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[audio_token],
        model_max_length=model_max_length,
        padding_side="right",
    )


def tokenizer_summary(tokenizer, texts: Sequence[str], sample: int = 2000) -> dict:
    """Vocabulary size and tokens per caption (without BOS) over the first `sample` texts."""
    sample_texts = list(texts[:sample])
    encoded = tokenizer(sample_texts, add_special_tokens=False)["input_ids"] if sample_texts else []
    lengths = [len(ids) for ids in encoded]
    return {
        "vocab_size": len(tokenizer),
        "mean_tokens_per_caption": (sum(lengths) / len(lengths)) if lengths else 0.0,
        "max_tokens_per_caption": max(lengths) if lengths else 0,
        "captions_measured": len(lengths),
    }


@dataclass
class TokenizerTrainingArguments:
    output_dir: str = field(metadata={"help": "folder for the saved tokenizer"})
    vocab_size: int = field(default=2000, metadata={"help": "vocabulary size (>= 261)"})
    min_frequency: int = field(default=2, metadata={"help": "fewest occurrences of a pair to merge it"})
    lowercase: bool = field(default=False, metadata={"help": "lower-case all text"})
    audio_token: str = field(default=DEFAULT_AUDIO_TOKEN, metadata={"help": "audio placeholder special token"})
    caption_files: list[str] = field(
        default_factory=list, metadata={"help": "caption .txt / .csv (AudioCaps, Clotho) / .jsonl files"}
    )
    corpus_path: str | None = field(default=None, metadata={"help": "corpus folder (llm-aac synth output, Clotho, ...)"})
    corpus_split: str | None = field(default="train", metadata={"help": "split of the corpus folder"})
    synthetic_clips: int = field(default=0, metadata={"help": "captions of this many synthetic clips (5 each)"})
    synthetic_seed: int = field(default=0, metadata={"help": "seed of the synthetic corpus"})


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser

    from llm_aac.train.caption_text import collect_captions

    (args,) = HfArgumentParser(TokenizerTrainingArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    texts = collect_captions(
        caption_files=args.caption_files,
        corpus_path=args.corpus_path,
        corpus_split=args.corpus_split,
        synthetic_clips=args.synthetic_clips,
        synthetic_seed=args.synthetic_seed,
    )
    tokenizer = train_caption_tokenizer(
        texts, vocab_size=args.vocab_size, min_frequency=args.min_frequency, lowercase=args.lowercase,
        audio_token=args.audio_token,
    )
    tokenizer.save_pretrained(args.output_dir)
    summary = tokenizer_summary(tokenizer, texts)
    logger.info(
        "trained on %d captions: vocabulary %d, %.1f tokens per caption (max %d); saved to %s",
        len(texts), summary["vocab_size"], summary["mean_tokens_per_caption"], summary["max_tokens_per_caption"],
        args.output_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`llm-aac caption`: caption audio files with a saved captioner folder (optionally CLAP-rescored candidates).

    llm-aac caption a.wav b.flac c.ogg --model captioner/ [--clap laion/clap-htsat-unfused]
        [--candidates slam|single|sample|none] [--num-candidates N] [--json] [--batch-size 8] [--device cuda]

Files are decoded with soundfile (WAV, FLAC, OGG, ...). A file that cannot be read gets one error line on
stderr; the other files are still captioned, and the exit status is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG, ...)")
    parser.add_argument("--model", required=True, help="captioner folder or Hub id (written by save_captioner)")
    parser.add_argument("--clap", default=None,
                        help="CLAP scorer: Hub id, ClapModel / EAT-CLAP folder or laion-clap .pt "
                             "(default: the one saved with the captioner, if any)")
    parser.add_argument("--clap-tokenizer", default=None,
                        help="tokenizer folder or id for a laion-clap .pt checkpoint (they use roberta-base)")
    parser.add_argument("--no-clap", action="store_true", help="do not rescore with CLAP even if one was saved")
    parser.add_argument("--candidates", choices=["slam", "single", "sample", "none"], default=None,
                        help="candidate strategy (default: the captioner folder's; 'none' = plain decoding)")
    parser.add_argument("--num-candidates", type=int, default=None,
                        help="candidates per clip for 'single' and 'sample' (default 7)")
    parser.add_argument("--diversity-penalty", type=float, default=None,
                        help="'single': > 0 for a diverse (group) beam search")
    parser.add_argument("--lm-weight", type=float, default=None,
                        help="weight of the captioner's mean token log-probability added to the CLAP similarity")
    parser.add_argument("--pseudo-references", type=int, default=None, metavar="K",
                        help="sample K captions per clip and fuse each candidate's consensus with them into the pick "
                             "(default: the number saved with the captioner; 0: none)")
    parser.add_argument("--consensus-weight", type=float, default=None,
                        help="weight of that consensus in the pick (default: the one saved with the CLAP scorer)")
    parser.add_argument("--pseudo-reference-temperature", type=float, default=None, metavar="T",
                        help="sampling temperature of those captions (default: the one saved with the captioner, "
                             "else 1)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="caption length limit in tokens")
    parser.add_argument("--backend", choices=["auto", "fast", "generate"], default="auto",
                        help="decoder: prefix-sharing fast decoder, transformers' generate, or auto")
    parser.add_argument("--batch-size", type=int, default=8, help="clips captioned together")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list (file, caption, candidates with scores; errors as {file, error})")


def _load_clips(files: list[str]) -> tuple[list[tuple[str, dict]], list[tuple[str, str]]]:
    """Decoded clips, and (file, reason) for files that cannot be read or that the captioner's input check would
    refuse (e.g. NaN samples): such a file gets its own error instead of stopping the whole batch."""
    from llm_aac.processing.audio_io import decode_audio
    from modeling_llm_aac.feature_extraction_llm_aac import mono_float32_samples

    clips, failures = [], []
    for path in files:
        try:
            samples, rate = decode_audio(path)
            samples = mono_float32_samples(samples, "the audio")
        except (ValueError, TypeError, OSError) as error:
            failures.append((path, str(error)))
            continue
        clips.append((path, {"array": samples, "sampling_rate": rate}))
    return clips, failures


def _fitting_clips(captioner, clips: list[tuple[str, dict]]) -> tuple[list[tuple[str, dict]], list[tuple[str, str]]]:
    """The clips the captioner's encoder can take whole, and (file, reason) for the others (longer than its
    `max_length`), so that one long file does not stop the rest of the batch."""
    extractor = captioner.processor.feature_extractor
    fitting, too_long = [], []
    for path, clip in clips:
        samples_at_model_rate = round(len(clip["array"]) * extractor.sampling_rate / clip["sampling_rate"])
        try:
            captioner.model.config.num_audio_tokens(extractor.num_frames(samples_at_model_rate))
        except ValueError as error:
            too_long.append((path, f"{len(clip['array']) / clip['sampling_rate']:.1f} s: {error}"))
            continue
        fitting.append((path, clip))
    return fitting, too_long


def _local_model_problem(model: str) -> str | None:
    """Why `--model` cannot be a local captioner folder when it names a local path (absolute, `./`, `../`, or an
    existing file), so that a mistyped folder is reported as such instead of as an invalid Hub repo id."""
    if os.path.isdir(model):
        return None
    if os.path.isfile(model):
        return "this is a file; give the folder a captioner was saved to (save_pretrained / llm-aac demo --output)"
    if os.path.isabs(model) or model.startswith(("./", "../", "~")):
        return "no such folder"
    return None


def main(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        print(f"error: --batch-size must be positive, got {args.batch_size}", file=sys.stderr)
        return 2
    clips, failures = _load_clips(args.files)
    for path, message in failures:
        print(f"error: {path}: {message}", file=sys.stderr)

    results: list[dict] = []
    if clips:
        import torch
        from transformers import pipeline

        from modeling_llm_aac.pipeline_audio_captioning import AudioCaptioningPipeline

        local_problem = _local_model_problem(args.model)
        if local_problem:
            print(f"error: cannot load the captioner {args.model!r}: {local_problem}", file=sys.stderr)
            return 2
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        clap = False if args.no_clap else args.clap
        clap_kwargs = {"tokenizer": args.clap_tokenizer} if args.clap_tokenizer else None
        try:
            captioner = pipeline(
                "audio-captioning", model=args.model, pipeline_class=AudioCaptioningPipeline, device=device,
                clap=clap, clap_kwargs=clap_kwargs,
            )
        except (OSError, ValueError) as error:
            print(f"error: cannot load the captioner {args.model!r}: {error}", file=sys.stderr)
            return 2
        options = {
            "candidates": args.candidates, "num_candidates": args.num_candidates,
            "diversity_penalty": args.diversity_penalty, "lm_weight": args.lm_weight, "backend": args.backend,
            "num_pseudo_references": args.pseudo_references, "consensus_weight": args.consensus_weight,
            "pseudo_reference_temperature": args.pseudo_reference_temperature, "return_candidates": args.json,
        }
        if args.max_new_tokens is not None:
            options["max_new_tokens"] = args.max_new_tokens
            options["generate_kwargs"] = {"max_new_tokens": args.max_new_tokens}
        options = {key: value for key, value in options.items() if value is not None}
        clips, too_long = _fitting_clips(captioner, clips)
        for path, message in too_long:
            print(f"error: {path}: {message}", file=sys.stderr)
        failures += too_long
        try:
            outputs = captioner([clip for _, clip in clips], batch_size=args.batch_size, **options) if clips else []
        except (ValueError, TypeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        for (path, _), output in zip(clips, outputs):
            results.append({"file": path, **output})

    if args.json:
        errors = [{"file": path, "error": message} for path, message in failures]
        json.dump(results + errors, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for result in results:
            print(f"{result['file']}\t{result['caption']}")
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="llm-aac caption")
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))

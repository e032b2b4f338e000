"""``python -m ttft encode DATASET TASK_ID``: the exact text a model sees for a task, which spans carry the loss, and
its token counts, with a profile's encoding (``--profile arc24``) or the encoding options as flags.

With ``--json`` the last line of stdout is one JSON object: ``task``, ``test_index``, ``profile``, ``encoding`` (the
encoding options), ``tokenizer``, ``template`` (plain or chat), ``answer`` (training text with the test output, or
the generation prompt), ``text``, ``spans`` (``[start, end, role, trained]``, character offsets covering the text),
``trained_ranges``, ``trained_text``, ``n_tokens``, ``n_trained``, ``max_seq_len``, ``fits``. A task, option or
tokenizer that cannot be used exits with status 2 and one line on stderr (the embedded tokenizer cannot write the
arc24 and marc prompts: use ``--tokenizer preview-chatml``, ``preview-llama3`` or a real tokenizer's folder).
"""

from __future__ import annotations

import argparse
from typing import Any

from ttft.cli.main import CliError, _load, _print_json
from ttft.core.data import BUNDLED

_TOKENIZER_HELP = (
    "embedded (the embedded model's 45 tokens), preview-chatml / preview-llama3 (a character-level "
    "tokenizer with a ChatML or Llama-3 chat template, to see a chat profile's exact text; its token "
    "counts are characters), or a tokenizer folder (loaded offline) [default: embedded]"
)


def _tokenizer(name: str) -> Any:
    from ttft.core.profiles import PREVIEW_TOKENIZERS, preview_tokenizer
    from ttft.core.tokenizer import EMBEDDED, load_tokenizer

    if name == EMBEDDED:
        return None
    if name in PREVIEW_TOKENIZERS:
        return preview_tokenizer(name)
    try:
        return load_tokenizer(name)
    except ValueError as e:
        raise CliError(f"--tokenizer: {e}") from None


def encoding_of(args: argparse.Namespace):
    """The EncodingConfig of the flags: the profile's encoding (when --profile is given) with the flags over it."""
    from ttft.core.encoding import EncodingConfig
    from ttft.core.profiles import profile_values
    from ttft.options import ConfigError, apply_args

    try:
        base = profile_values(args.profile, "train").get("encoding") if args.profile else None
        return apply_args(EncodingConfig, args, base)
    except ConfigError as e:
        raise CliError(str(e)) from None


def cmd_encode(args: argparse.Namespace) -> int:
    from ttft.core.encoding import tokenize_task
    from ttft.core.profiles import check_encodable
    from ttft.options import ConfigError

    ds = _load(args.dataset)
    if args.task_id not in ds.tasks:
        raise CliError(f"task {args.task_id!r} is not in dataset {ds.name!r} ({len(ds)} tasks)")
    task = ds.tasks[args.task_id]
    cfg = encoding_of(args)
    tok = _tokenizer(args.tokenizer)
    k = args.test_index
    if not 0 <= k < len(task.test):
        raise CliError(f"--test-index: task {task.id} has {len(task.test)} test pair(s), got {k}")
    answer = not args.generation and task.test[k].output is not None
    try:
        check_encodable(cfg, tok)
        tt = tokenize_task(task, cfg, tok, test_index=k, answer=answer)
    except (ConfigError, ValueError, TypeError) as e:
        hint = " (to see its text without a model: --tokenizer preview-chatml)" if tok is None else ""
        raise CliError(f"{e}{hint if cfg.prompt != 'markers' else ''}") from None
    enc = tt.encoded
    out = {
        "task": task.id,
        "test_index": k,
        "profile": args.profile or "ttft",
        "encoding": cfg.to_json(),
        "tokenizer": args.tokenizer,
        "template": enc.template,
        "answer": answer,
        "text": enc.text,
        "spans": [[s.start, s.end, s.role, s.trained] for s in enc.spans],
        "trained_ranges": [list(r) for r in enc.ranges(True)],
        "trained_text": enc.trained_text(),
        "n_tokens": tt.n_tokens,
        "n_trained": tt.n_trained,
        "max_seq_len": cfg.max_seq_len,
        "fits": tt.fits,
    }
    if args.json:
        _print_json(out)
        return 0
    print(enc.text, end="" if enc.text.endswith("\n") else "\n")
    print(
        f"--- {task.id} test {k + 1}: {tt.n_tokens} tokens ({args.tokenizer}), {tt.n_trained} carry the loss "
        f"(loss on {cfg.loss_on}); {'fits' if tt.fits else 'over'} max_seq_len {cfg.max_seq_len}; "
        f"{'training text' if answer else 'generation prompt'}; {enc.template} prompt"
    )
    print("--- the text that carries the loss:")
    print(enc.trained_text())
    return 0


def register(subparsers) -> None:
    """Add the ``encode`` command to ``python -m ttft``."""
    from ttft.core.encoding import EncodingConfig
    from ttft.core.profiles import PROFILE_NAMES
    from ttft.options import add_arguments

    p = subparsers.add_parser(
        "encode",
        help="show the exact text a model sees for a task, its loss-carrying spans "
        "and token counts (a profile's encoding or the encoding flags)",
    )
    p.add_argument(
        "dataset",
        help=f"a bundled dataset ({', '.join(BUNDLED)}), a task JSON file, a folder of task "
        "files, or a Kaggle *_challenges.json",
    )
    p.add_argument("task_id", help="id of the task")
    p.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default=None,
        help="a reference system's encoding (its text format, prompt, chat template, loss); the encoding "
        "flags given override it [default: ttft's own]",
    )
    add_arguments(p, EncodingConfig)
    p.add_argument("--tokenizer", default="embedded", metavar="NAME_OR_FOLDER", help=_TOKENIZER_HELP)
    p.add_argument("--test-index", type=int, default=0, help="which test pair [default: 0]")
    p.add_argument(
        "--generation", action="store_true", help="the generation prompt (no test output) instead of the training text"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_encode)

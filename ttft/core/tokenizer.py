"""The embedded default model's tokenizer, tokenizer loading, and a fast exact encoder for it.

The embedded tokenizer gives one token per character of a small alphabet: the digits 0-9 (one per grid cell),
newline (one per row end), space, ``:`` and the lowercase letters (enough for every format of
:mod:`ttft.encoding`: ``minimal``, ``shape+rows`` with its ``shape: 3x4`` header and row numbers, ``separated``),
plus the markers ``<input>`` / ``<output>`` and the specials ``<pad>``, ``<s>``, ``</s>``, ``<unk>`` as single
tokens. Any other character becomes ``<unk>``. It is a real ``transformers.PreTrainedTokenizerFast`` built with the
``tokenizers`` library; ``save_pretrained`` / ``from_pretrained`` round-trip it, and a copy is shipped in
``ttft/assets/tokenizer/`` (regenerate with ``python -m ttft.tokenizer``).

:class:`FastEncoder` maps text to the same ids with a character lookup table (no transformers import); the tests
check that it matches the real tokenizer on ARC tasks. transformers is imported lazily.
"""

from __future__ import annotations

import json
import os
import re
import sys
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

__all__ = [
    "SPECIALS",
    "MARKERS",
    "CHARS",
    "VOCAB",
    "PAD",
    "BOS",
    "EOS",
    "UNK",
    "INPUT_MARKER",
    "OUTPUT_MARKER",
    "ASSET_DIR",
    "EMBEDDED",
    "build_embedded_tokenizer",
    "save_embedded_tokenizer",
    "load_tokenizer",
    "is_embedded",
    "tokenizer_name",
    "FastEncoder",
    "fast_encoder",
]

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
INPUT_MARKER, OUTPUT_MARKER = "<input>", "<output>"
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
MARKERS: tuple[str, ...] = (INPUT_MARKER, OUTPUT_MARKER)
#: single-character tokens, in id order after the specials and markers
CHARS: str = "0123456789\n :abcdefghijklmnopqrstuvwxyz"
#: token -> id; ids 0-3 specials, 4-5 markers, then :data:`CHARS` (so digit d has id 6 + d)
VOCAB: dict[str, int] = {t: i for i, t in enumerate(SPECIALS + MARKERS + tuple(CHARS))}

#: the shipped copy of the embedded tokenizer
ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "tokenizer"
#: the name that :func:`load_tokenizer` resolves to the shipped copy
EMBEDDED = "embedded"


def _backend():
    """The ``tokenizers.Tokenizer`` behind the embedded tokenizer."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel(dict(VOCAB), unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKERS])
    return tok


def build_embedded_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh embedded tokenizer (no files read)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_backend(), pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK, padding_side="right"
    )


def save_embedded_tokenizer(path: str | os.PathLike = ASSET_DIR) -> list[Path]:
    """Write a fresh embedded tokenizer with ``save_pretrained`` to ``path``; returns the files written."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return [Path(p) for p in build_embedded_tokenizer().save_pretrained(str(path))]


def load_tokenizer(name_or_path: str | os.PathLike | None = None) -> PreTrainedTokenizerBase:
    """Load a tokenizer offline: ``None`` or ``"embedded"`` gives the shipped embedded tokenizer; otherwise a folder
    with tokenizer files (or a hub id already in the local cache). Raises ValueError naming the path when nothing
    can be loaded."""
    from transformers import AutoTokenizer

    if name_or_path is None or str(name_or_path) == EMBEDDED:
        if not (ASSET_DIR / "tokenizer.json").is_file():
            raise ValueError(
                f"the embedded tokenizer files are missing from {ASSET_DIR}; "
                "regenerate them with `python -m ttft.tokenizer`"
            )
        src: str = str(ASSET_DIR)
    else:
        path = Path(name_or_path).expanduser()
        src = str(path) if path.exists() else str(name_or_path)
        if not path.exists() and (path.is_absolute() or str(name_or_path).startswith((".", "~"))):
            raise ValueError(f"tokenizer folder {src!r} does not exist")
    try:
        return AutoTokenizer.from_pretrained(src, local_files_only=True)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load a tokenizer from {src!r} (offline): {first}") from None


def tokenizer_name(tokenizer: Any) -> str:
    """``name_or_path (Class)`` for messages."""
    name = getattr(tokenizer, "name_or_path", "") or "unsaved"
    return f"{name} ({type(tokenizer).__name__})"


# --------------------------------------------------------------------------- recognising the embedded tokenizer

_SIGNATURE_KEYS = ("normalizer", "pre_tokenizer", "model", "post_processor")
_reference: dict[str, Any] = {}
_known: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _signature(backend_json: str) -> dict[str, Any]:
    d = json.loads(backend_json)
    sig = {k: d.get(k) for k in _SIGNATURE_KEYS}
    sig["added_tokens"] = [(t["id"], t["content"], t["special"]) for t in d.get("added_tokens", [])]
    return sig


def is_embedded(tokenizer: Any) -> bool:
    """True when ``tokenizer`` tokenises exactly like the embedded tokenizer (same vocabulary, pre-tokenizer,
    model, post-processor and added tokens), wherever it was loaded from. Cached per tokenizer object."""
    try:
        return _known[tokenizer]
    except (KeyError, TypeError):
        pass
    backend = getattr(tokenizer, "backend_tokenizer", None)
    result = False
    if backend is not None:
        if "sig" not in _reference:
            _reference["sig"] = _signature(build_embedded_tokenizer().backend_tokenizer.to_str())
        result = _signature(backend.to_str()) == _reference["sig"]
    try:
        _known[tokenizer] = result
    except TypeError:  # not weak-referenceable: just don't cache
        pass
    return result


# --------------------------------------------------------------------------- fast exact encoder


class FastEncoder:
    """Text -> embedded-tokenizer ids with a lookup table; equal to ``tokenizer(text)["input_ids"]`` of the
    embedded tokenizer (checked by the tests)."""

    def __init__(self) -> None:
        self.lut = np.full(256, VOCAB[UNK], dtype=np.int64)
        for ch in CHARS:
            self.lut[ord(ch)] = VOCAB[ch]
        self.added = {t: VOCAB[t] for t in SPECIALS + MARKERS}
        self._split = re.compile("(" + "|".join(re.escape(t) for t in sorted(self.added, key=len, reverse=True)) + ")")
        self._cache: dict[str, np.ndarray] = {}

    def _chars(self, text: str) -> np.ndarray:
        if text.isascii():
            return self.lut[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
        unk = VOCAB[UNK]
        return np.array([VOCAB.get(ch, unk) for ch in text], dtype=np.int64)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int64) of ``text`` (treat the result as read-only: short texts are cached)."""
        if "<" not in text:
            return self._chars(text)
        if len(text) <= 32:  # markers and end texts recur in every prompt
            cached = self._cache.get(text)
            if cached is None:
                cached = self._cache[text] = self._encode_added(text)
                cached.flags.writeable = False
                if len(self._cache) > 1024:
                    self._cache.clear()
            return cached
        return self._encode_added(text)

    def _encode_added(self, text: str) -> np.ndarray:
        parts = []
        for i, piece in enumerate(self._split.split(text)):
            if i % 2:
                parts.append(np.array([self.added[piece]], dtype=np.int64))
            elif piece:
                parts.append(self._chars(piece))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


_fast: list[FastEncoder] = []


def fast_encoder() -> FastEncoder:
    """The shared :class:`FastEncoder`."""
    if not _fast:
        _fast.append(FastEncoder())
    return _fast[0]


if __name__ == "__main__":  # python -m ttft.tokenizer [FOLDER]
    for f in save_embedded_tokenizer(sys.argv[1] if len(sys.argv) > 1 else ASSET_DIR):
        print(f)

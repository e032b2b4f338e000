"""Grid-constrained decoding: a character automaton of each grid text format, lifted to any tokenizer's tokens, and a
batched ``transformers`` logits processor that masks every token that cannot continue a valid grid.

:class:`GridGrammar` is the automaton of one format (``minimal``, ``shape+rows``, ``separated``, ``arc24``,
``numpy``; :mod:`ttft.core.gridtext`): a state is a small tuple, :meth:`GridGrammar.step` reads one character
(``None``: the text can no longer be a grid), :meth:`GridGrammar.accepting` says whether the grid may end there.
It admits exactly the grids ``grid_to_text`` writes — digits of the palette, every row as wide as the first, at most
30x30, the shape header and row numbers where the format has them (and they must agree with the rows) — with the
final newline optional (the reference systems' prompts drop it) and a ``trail`` after the grid (MARC's ``#``).

:class:`TokenAutomaton` lifts it to a tokenizer: every token's decoded string (decoded after an anchor token, so
SentencePiece's leading spaces survive) is run through the automaton from a state; the allowed tokens of a state and
their next states are computed once, when the state is first reached, and cached (states are interned as ints and
their masks kept as rows of one additive bias table, so a decoding step costs one index per row). Once the grid may
end, the stop tokens are allowed; once it must end, only they are.

:class:`GridConstraint` is the logits processor: one automaton state per batch row, advanced with the token the row
took; finished rows are left alone. Nothing here imports streamlit.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from ttft.core.data import MAX_SIDE
from ttft.core.gridtext import ARC24_FENCE, FORMATS

DIGITS = "0123456789"
State = tuple


class GridGrammar:
    """The character automaton of the grid text of format ``fmt`` (see the module docstring)."""

    def __init__(self, fmt: str, palette: str = DIGITS, trail: str = "", max_side: int = MAX_SIDE) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.fmt, self.palette, self.trail, self.max = fmt, frozenset(palette), trail, max_side
        self.header = {"shape+rows": "shape: ", "arc24": "```grid shape: "}.get(fmt, "")
        #: every character a grid text of this format can hold
        self.alphabet = frozenset(DIGITS + "\nx" + self.header + trail + ("[] " if fmt == "numpy" else " `"))

    def start(self, prefix: str = "") -> State:
        """The state after ``prefix`` (text the prompt already holds, e.g. arc24's opening fence)."""
        s: State | None = {"minimal": ("m", 0, 0, 0), "separated": ("s", 0, 0, 0, False), "numpy": ("o", 0, 0, 0)}.get(
            self.fmt, ("h", 0)
        )
        for ch in prefix:
            s = self.step(s, ch) if s is not None else None
        if s is None:
            raise ValueError(f"{prefix!r} does not begin a grid in format {self.fmt!r}")
        return s

    def feed(self, state: State | None, text: str) -> State | None:
        for ch in text:
            if state is None:
                return None
            state = self.step(state, ch)
        return state

    def accepts(self, text: str, prefix: str = "") -> bool:
        """Whether ``text`` (after ``prefix``) is a whole grid."""
        s = self.feed(self.start(prefix), text)
        return s is not None and self.accepting(s)

    def accepting(self, s: State) -> bool:
        k = s[0]
        if k == "t":
            return s[1] == len(self.trail)
        return self._complete(s)

    def _complete(self, s: State) -> bool:
        k = s[0]
        if k == "m":
            _, r, c, w = s
            return (c == 0 and r >= 1) or (c > 0 and (w == 0 or c == w))
        if k == "s":
            _, r, c, w, last = s
            return (c == 0 and r >= 1) or (last and (w == 0 or c == w))
        if k == "c":  # the last row full: the grid may end without its newline
            _, i, c, h, w = s
            return i == h and c == w and self.fmt == "shape+rows"
        return k in ("done", "done2")

    def step(self, s: State, ch: str) -> State | None:
        """The state after character ``ch``, or None."""
        k = s[0]
        if k == "t":
            return ("t", s[1] + 1) if s[1] < len(self.trail) and ch == self.trail[s[1]] else None
        if self.trail and ch == self.trail[0] and self._complete(s):
            return ("t", 1)
        lim = self.max
        if k == "m":
            _, r, c, w = s
            if ch in self.palette:
                return ("m", r, c + 1, w) if c < (w or lim) and r < lim else None
            if ch == "\n" and c > 0 and (w == 0 or c == w) and r < lim:
                return ("m", r + 1, 0, c)
            return None
        if k == "s":
            _, r, c, w, last = s
            if ch in self.palette:
                return ("s", r, c + 1, w, True) if not last and c < (w or lim) and r < lim else None
            if ch == " ":
                return ("s", r, c, w, False) if last and c < (w or lim) else None
            if ch == "\n" and last and (w == 0 or c == w) and r < lim:
                return ("s", r + 1, 0, c, False)
            return None
        if k in ("done", "done2"):  # a closed grid (arc24's fence, numpy's "]]"): its final newline
            return ("done2",) if k == "done" and ch == "\n" and self.fmt in ("arc24", "numpy") else None
        if k in ("h", "H", "W", "n", "c", "f"):
            return self._step_header(s, ch)
        return self._step_numpy(s, ch)

    def _number(self, v: int, ch: str) -> int | None:
        if ch not in DIGITS or (v == 0 and ch == "0"):
            return None
        nv = 10 * v + int(ch)
        return nv if nv <= self.max else None

    def _step_header(self, s: State, ch: str) -> State | None:
        k = s[0]
        if k == "h":
            i = s[1]
            if ch != self.header[i]:
                return None
            return ("H", 0) if i + 1 == len(self.header) else ("h", i + 1)
        if k == "H":
            if ch == "x":
                return ("W", 0, s[1]) if s[1] else None
            nv = self._number(s[1], ch)
            return None if nv is None else ("H", nv)
        if k == "W":
            if ch == "\n":
                return ("n", 1, 0, s[2], s[1]) if s[1] else None
            nv = self._number(s[1], ch)
            return None if nv is None else ("W", nv, s[2])
        if k == "n":
            _, i, j, h, w = s
            lab = f"{i} "
            if ch != lab[j]:
                return None
            return ("c", i, 0, h, w) if j + 1 == len(lab) else ("n", i, j + 1, h, w)
        if k == "c":
            _, i, c, h, w = s
            if ch in self.palette:
                return ("c", i, c + 1, h, w) if c < w else None
            if ch == "\n" and c == w:
                if i < h:
                    return ("n", i + 1, 0, h, w)
                return ("f", 0) if self.fmt == "arc24" else ("done",)
            return None
        if k == "f":  # arc24's closing fence
            if ch != "`":
                return None
            return ("done",) if s[1] == 2 else ("f", s[1] + 1)
        return None

    def _step_numpy(self, s: State, ch: str) -> State | None:
        k = s[0]
        if k == "o":  # the opening of row r: "[[" (first row) or " ["
            _, r, j, w = s
            lab = "[[" if r == 0 else " ["
            if ch != lab[j]:
                return None
            return ("q", r, 0, w, False) if j == 1 else ("o", r, 1, w)
        if k == "q":
            _, r, c, w, last = s
            if ch in self.palette:
                return ("q", r, c + 1, w, True) if not last and c < (w or self.max) else None
            if ch == " ":
                return ("q", r, c, w, False) if last and c < (w or self.max) else None
            if ch == "]" and last and (w == 0 or c == w):
                return ("b", r, c)
            return None
        if k == "b":  # after a row's "]": "]" ends the grid, a newline opens the next row
            _, r, w = s
            if ch == "]":
                return ("done",)
            if ch == "\n" and r + 1 < self.max:
                return ("o", r + 1, 0, w)
        return None


def grammar_for(encoding: Any, palette: str = DIGITS) -> tuple[GridGrammar, str]:
    """The automaton of an :class:`~ttft.core.encoding.EncodingConfig`'s generated output, and the text the
    generation prompt already holds (arc24's ``"```grid"``): MARC's prompt ends a grid with ``#``."""
    trail = "#" if encoding.prompt == "marc" else ""
    prefix = ARC24_FENCE if encoding.prompt == "arc24" and encoding.format == "arc24" else ""
    return GridGrammar(encoding.format, palette, trail), prefix


# --------------------------------------------------------------------------- tokens

_strings: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def token_strings(tokenizer: Any) -> list[str]:
    """The text every token id adds when decoded after other text (cached per tokenizer): decoded after an anchor
    token and with the anchor's text removed, so a SentencePiece token's leading space is kept; ``""`` where the
    token adds no text of its own (an incomplete UTF-8 byte, ...)."""
    try:
        return _strings[tokenizer]
    except (KeyError, TypeError):
        pass
    n = len(tokenizer)
    anchor_ids = tokenizer("0", add_special_tokens=False)["input_ids"]
    anchor = anchor_ids[-1] if anchor_ids else None
    if anchor is None:
        out = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
    else:
        base = tokenizer.decode([anchor], skip_special_tokens=False)
        both = tokenizer.batch_decode([[anchor, i] for i in range(n)], skip_special_tokens=False)
        out = [b[len(base) :] if b.startswith(base) else "" for b in both]
    out = ["" if "\ufffd" in s else s for s in out]
    try:
        _strings[tokenizer] = out
    except TypeError:
        pass
    return out


class TokenAutomaton:
    """:class:`GridGrammar` over a tokenizer's tokens: per state (interned as an int), the allowed tokens and their
    next states, and an additive bias row (0 allowed, -inf not) in one ``(states, vocab)`` table."""

    def __init__(
        self, grammar: GridGrammar, strings: Sequence[str], stop_ids: Sequence[int], vocab_size: int, prefix: str = ""
    ) -> None:
        self.g = grammar
        self.vocab = int(vocab_size)
        self.stops = [int(t) for t in stop_ids if 0 <= int(t) < vocab_size]
        self.cands = [(i, s) for i, s in enumerate(strings[:vocab_size]) if s and set(s) <= grammar.alphabet]
        self.ids: dict[State, int] = {}
        self.states: list[State] = []
        self.trans: list[dict[int, State]] = []
        self.allowed: list[np.ndarray] = []
        self._bias = None
        self._rows = 0
        self.start = self.intern(grammar.start(prefix))

    def intern(self, s: State) -> int:
        """The id of state ``s``, computing its allowed tokens and their next states when first seen."""
        sid = self.ids.get(s)
        if sid is not None:
            return sid
        sid = self.ids[s] = len(self.states)
        self.states.append(s)
        nxt: dict[int, State] = {}
        for tok, text in self.cands:
            t = self.g.feed(s, text)
            if t is not None:
                nxt[tok] = t
        self.trans.append(nxt)
        allowed = list(nxt)
        if self.g.accepting(s) or not allowed:  # may end, or cannot go on (never for a complete tokenizer): stop
            allowed += self.stops
        self.allowed.append(np.asarray(sorted(set(allowed)), dtype=np.int64))
        return sid

    def next(self, sid: int, tok: int) -> int | None:
        """The state after token ``tok`` from state ``sid`` (None: ``tok`` is not a grid token there)."""
        t = self.trans[sid].get(tok)
        return None if t is None else self.intern(t)

    def bias(self, device: Any):
        """The additive masks of every state interned so far, as rows of a ``(capacity, vocab)`` table on ``device``
        (its capacity doubles as states appear; rows past the states are unused)."""
        import torch

        n = len(self.states)
        if self._bias is None or self._bias.device != device or self._bias.shape[0] < n:
            cap = max(64, 2 * n) if self._bias is None or self._bias.shape[0] < n else self._bias.shape[0]
            old = self._bias
            self._bias = torch.full((cap, self.vocab), float("-inf"), device=device)
            if old is not None and old.device == device:
                self._bias[: self._rows] = old[: self._rows]
            else:
                self._rows = 0
        for k in range(self._rows, n):
            self._bias[k, torch.as_tensor(self.allowed[k], device=device)] = 0.0
        self._rows = n
        return self._bias


_automata: dict[tuple, TokenAutomaton] = {}


def automaton_for(tokenizer: Any, encoding: Any, stop_ids: Sequence[int], vocab_size: int) -> TokenAutomaton:
    """The cached :class:`TokenAutomaton` of a tokenizer, encoding and vocabulary size."""
    grammar, prefix = grammar_for(encoding)
    key = (id(tokenizer), grammar.fmt, grammar.trail, prefix, tuple(stop_ids), int(vocab_size))
    a = _automata.get(key)
    if a is None:
        if len(_automata) > 16:
            _automata.clear()
        a = _automata[key] = TokenAutomaton(grammar, token_strings(tokenizer), stop_ids, vocab_size, prefix)
    return a


class GridConstraint:
    """A ``transformers`` logits processor: every row may only continue a valid grid (batched, one automaton state
    per row). Rows whose last token is a stop token (or one outside the automaton: never with this processor in
    place) are left unmasked."""

    def __init__(self, automaton: TokenAutomaton, batch: int) -> None:
        self.a = automaton
        self.rows: list[int | None] = [automaton.start] * batch
        self.started = False
        self.stops = set(automaton.stops)

    def advance(self, last_tokens: Sequence[int]) -> None:
        for i, tok in enumerate(last_tokens):
            s = self.rows[i]
            if s is None:
                continue
            self.rows[i] = None if tok in self.stops else self.a.next(s, int(tok))

    def mask(self, scores):
        """``scores`` with every token outside the rows' grids at -inf."""
        import torch

        sids = [s if s is not None else -1 for s in self.rows]
        bias = self.a.bias(scores.device)
        if all(s >= 0 for s in sids):
            return scores + bias[torch.as_tensor(sids, device=scores.device)].to(scores.dtype)
        out = scores.clone()
        live = [i for i, s in enumerate(sids) if s >= 0]
        if live:
            idx = torch.as_tensor([sids[i] for i in live], device=scores.device)
            rows = torch.as_tensor(live, device=scores.device)
            out[rows] = scores[rows] + bias[idx].to(scores.dtype)
        return out

    def __call__(self, input_ids, scores):
        if self.started:
            self.advance(input_ids[:, -1].tolist())
        self.started = True
        return self.mask(scores)

"""Composition steps of augmentations (upscale, pad, mirror, tile), exactly invertible."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from ttft.core.data import Grid


class InverseError(ValueError):
    """A grid that an inverse cannot map back (wrong shape, inconsistent copies)."""


#: what a composition step touches
TARGETS: tuple[str, ...] = ("input", "output", "both")


ROLES: tuple[str, ...] = ("input", "output")


def _check_target(target: Any) -> None:
    if target not in TARGETS:
        raise ValueError(f"step target must be one of {', '.join(TARGETS)}, got {target!r}")


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if type(value) is not int or value < lo or (hi is not None and value > hi):
        bound = f"{lo}-{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")


def _shape(g: Grid) -> str:
    return f"{g.shape[0]}x{g.shape[1]}" if g.ndim == 2 else f"{g.ndim}-D array of shape {g.shape}"


class _StepBase(ABC):
    """Shared behaviour of composition steps (subclasses are frozen dataclasses with a ``target``)."""

    kind: ClassVar[str]
    target: str

    def applies_to(self, role: str) -> bool:
        return self.target == "both" or self.target == role

    @abstractmethod
    def out_shape(self, h: int, w: int) -> tuple[int, int]:
        """See the subclasses."""

    @abstractmethod
    def apply(self, g: Grid) -> Grid:
        """See the subclasses."""

    @abstractmethod
    def invert(self, g: Grid, strict: bool = True) -> Grid:
        """See the subclasses."""

    def to_json(self) -> dict:
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}  # type: ignore[arg-type]

    def _fail(self, g: Grid, why: str) -> InverseError:
        return InverseError(f"cannot invert {self} on a {_shape(g)} grid: {why}")


@dataclass(frozen=True)
class Upscale(_StepBase):
    """Scale every cell up to a ``ky`` x ``kx`` block. Inverse: every k-th cell (blocks must be uniform)."""

    ky: int
    kx: int
    target: str = "both"
    kind: ClassVar[str] = "upscale"

    def __post_init__(self) -> None:
        _check_int("upscale factor ky", self.ky, 1)
        _check_int("upscale factor kx", self.kx, 1)
        _check_target(self.target)

    def __str__(self) -> str:
        return f"upscale:{self.ky}x{self.kx}:{self.target}"

    def out_shape(self, h: int, w: int) -> tuple[int, int]:
        return h * self.ky, w * self.kx

    def apply(self, g: Grid) -> Grid:
        return np.repeat(np.repeat(g, self.ky, axis=0), self.kx, axis=1)

    def invert(self, g: Grid, strict: bool = True) -> Grid:
        h, w = g.shape
        if h % self.ky or w % self.kx:
            raise self._fail(g, f"the height must be a multiple of {self.ky} and the width of {self.kx}")
        small = g[:: self.ky, :: self.kx]
        if strict and not np.array_equal(self.apply(small), g):
            raise self._fail(g, f"its {self.ky}x{self.kx} blocks are not uniform")
        return np.ascontiguousarray(small)


@dataclass(frozen=True)
class Pad(_StepBase):
    """Add a border ``width`` cells wide of colour ``color``. Inverse: crop it (the border must be that colour)."""

    width: int
    color: int
    target: str = "both"
    kind: ClassVar[str] = "pad"

    def __post_init__(self) -> None:
        _check_int("pad width", self.width, 1)
        _check_int("pad colour", self.color, 0, 9)
        _check_target(self.target)

    def __str__(self) -> str:
        return f"pad:{self.width}:{self.color}:{self.target}"

    def out_shape(self, h: int, w: int) -> tuple[int, int]:
        return h + 2 * self.width, w + 2 * self.width

    def apply(self, g: Grid) -> Grid:
        return np.pad(g, self.width, constant_values=self.color)

    def invert(self, g: Grid, strict: bool = True) -> Grid:
        p = self.width
        h, w = g.shape
        if h <= 2 * p or w <= 2 * p:
            raise self._fail(g, f"a border of {p} on each side needs at least {2 * p + 1}x{2 * p + 1}")
        inner = g[p:-p, p:-p]
        if strict and not np.array_equal(self.apply(inner), g):
            raise self._fail(g, f"its border is not all colour {self.color}")
        return np.ascontiguousarray(inner)


@dataclass(frozen=True)
class Mirror(_StepBase):
    """Append a reflected copy: ``axis="h"`` to the right (width doubles), ``"v"`` below (height doubles).
    Inverse: the first half (the second half must be its reflection)."""

    axis: str
    target: str = "both"
    kind: ClassVar[str] = "mirror"

    def __post_init__(self) -> None:
        if self.axis not in ("h", "v"):
            raise ValueError(f"mirror axis must be 'h' (append to the right) or 'v' (append below), got {self.axis!r}")
        _check_target(self.target)

    def __str__(self) -> str:
        return f"mirror:{self.axis}:{self.target}"

    def out_shape(self, h: int, w: int) -> tuple[int, int]:
        return (h, 2 * w) if self.axis == "h" else (2 * h, w)

    def apply(self, g: Grid) -> Grid:
        if self.axis == "h":
            return np.concatenate([g, g[:, ::-1]], axis=1)
        return np.concatenate([g, g[::-1]], axis=0)

    def invert(self, g: Grid, strict: bool = True) -> Grid:
        ax = 1 if self.axis == "h" else 0
        n = g.shape[ax]
        if n % 2:
            raise self._fail(g, f"the {'width' if ax else 'height'} must be even")
        half = g[:, : n // 2] if ax else g[: n // 2]
        if strict and not np.array_equal(self.apply(half), g):
            raise self._fail(g, "its second half is not the mirror image of the first")
        return np.ascontiguousarray(half)


@dataclass(frozen=True)
class Tile(_StepBase):
    """Repeat the grid ``ry`` times down and ``rx`` times across. Inverse: the first tile (all tiles must match)."""

    ry: int
    rx: int
    target: str = "both"
    kind: ClassVar[str] = "tile"

    def __post_init__(self) -> None:
        _check_int("tile repeats ry", self.ry, 1)
        _check_int("tile repeats rx", self.rx, 1)
        _check_target(self.target)

    def __str__(self) -> str:
        return f"tile:{self.ry}x{self.rx}:{self.target}"

    def out_shape(self, h: int, w: int) -> tuple[int, int]:
        return h * self.ry, w * self.rx

    def apply(self, g: Grid) -> Grid:
        return np.tile(g, (self.ry, self.rx))

    def invert(self, g: Grid, strict: bool = True) -> Grid:
        h, w = g.shape
        if h % self.ry or w % self.rx:
            raise self._fail(g, f"the height must be a multiple of {self.ry} and the width of {self.rx}")
        first = g[: h // self.ry, : w // self.rx]
        if strict and not np.array_equal(self.apply(first), g):
            raise self._fail(g, "its tiles are not all equal")
        return np.ascontiguousarray(first)


Step = Upscale | Pad | Mirror | Tile


_STEP_CLASSES: dict[str, type] = {c.kind: c for c in (Upscale, Pad, Mirror, Tile)}


#: kinds of composition step
STEP_KINDS: tuple[str, ...] = tuple(_STEP_CLASSES)


_STEP_SYNTAX = "upscale:KYxKX[:T], pad:WIDTH:COLOR[:T], mirror:h|v[:T], tile:RYxRX[:T] with T = input|output|both"


def step_from_json(d: Any) -> Step:
    """Rebuild a step from its ``to_json()`` dict."""
    if not isinstance(d, dict) or d.get("kind") not in _STEP_CLASSES:
        raise ValueError(f"a step must be an object with 'kind' one of {', '.join(STEP_KINDS)}, got {d!r}")
    cls = _STEP_CLASSES[d["kind"]]
    names = {f.name for f in fields(cls)}
    extra = set(d) - names - {"kind"}
    if extra:
        raise ValueError(f"unknown field(s) {', '.join(sorted(extra))} in {d['kind']} step {d!r}")
    try:
        return cls(**{k: v for k, v in d.items() if k != "kind"})
    except TypeError as e:
        raise ValueError(f"bad {d['kind']} step {d!r}: {e}") from None


def parse_step(text: str) -> Step:
    """Parse a step written as in ``str(step)``: ``upscale:2x3:input``, ``pad:1:5``, ``mirror:h:output``,
    ``tile:2x2`` (the target defaults to ``both``; ``upscale:2`` means 2x2)."""
    parts = [p.strip() for p in text.strip().split(":")]
    kind, args = parts[0], parts[1:]
    target = "both"
    if args and args[-1] in TARGETS:
        target = args.pop()

    def pair(s: str) -> tuple[int, int]:
        m = re.fullmatch(r"(\d+)(?:x(\d+))?", s)
        if not m:
            raise ValueError(f"bad step {text!r}: {s!r} is not a factor like 2 or 2x3")
        return int(m[1]), int(m[2] or m[1])

    try:
        if kind in ("upscale", "tile") and len(args) == 1:
            a, b = pair(args[0])
            return Upscale(a, b, target) if kind == "upscale" else Tile(a, b, target)
        if kind == "pad" and len(args) == 2 and all(a.isdigit() for a in args):
            return Pad(int(args[0]), int(args[1]), target)
        if kind == "mirror" and len(args) == 1:
            return Mirror(args[0], target)
    except ValueError as e:
        if str(e).startswith("bad step"):
            raise
        raise ValueError(f"bad step {text!r}: {e}") from None
    raise ValueError(f"bad step {text!r}; write one of {_STEP_SYNTAX}")


def _random_step(kind: str, rng: np.random.Generator, targets: Sequence[str]) -> Step:
    target = str(targets[int(rng.integers(len(targets)))])
    if kind == "upscale":
        return Upscale(int(rng.integers(2, 5)), int(rng.integers(2, 5)), target)
    if kind == "pad":
        return Pad(int(rng.integers(1, 3)), int(rng.integers(10)), target)
    if kind == "mirror":
        return Mirror("hv"[int(rng.integers(2))], target)
    if kind == "tile":
        ry, rx = ((1, 2), (2, 1), (2, 2))[int(rng.integers(3))]
        return Tile(ry, rx, target)
    raise ValueError(f"unknown step kind {kind!r}; choose one of {', '.join(STEP_KINDS)}")

"""Task augmentation: serialisable specs, applied with a seed and exactly invertible.

A *spec* (:class:`AugmentSpec`) describes one augmented copy (a "view") of a task:

1. a dihedral transform (one of the 8 symmetries of the square, :data:`DIHEDRAL`),
2. a colour permutation (a 10-tuple ``colors`` with ``colors[c]`` the new colour of ``c``),
3. an order of the train pairs (or ``None`` to keep it),
4. composition steps (:class:`Upscale`, :class:`Pad`, :class:`Mirror`, :class:`Tile`), applied in order to inputs,
   outputs or both ("problem augmentation").

Each grid goes through the dihedral transform, then the colours, then the steps; :func:`invert_grid` undoes them in
reverse order, so a grid predicted in the augmented frame maps back to the original frame. A spec is a frozen
dataclass that round-trips through ``to_json()`` / ``AugmentSpec.from_json()``; :func:`random_spec` draws one from an
:class:`AugmentOptions` (the typed config a training run saves) and a seed, reproducibly.

Leave-out tasks (:func:`leave_one_out`, :func:`leave_two_out`, :func:`seed_leave_two_out`, and
:func:`leave_out_tasks` choosing among them) build new tasks from the train pairs only.

A view whose grids would exceed 30x30 raises :class:`AugmentSkipped`; :func:`try_apply_task` reports it instead.
An inverse applied to a grid of the wrong shape (a malformed prediction) raises :class:`InverseError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ttft.core.compose import (
    ROLES,
    STEP_KINDS,
    TARGETS,
    Step,
    _random_step,
    _shape,
    _StepBase,
    parse_step,
    step_from_json,
)
from ttft.core.data import MAX_SIDE, Grid, Pair, Task
from ttft.options import ConfigError, Options, option

__all__ = [
    "DIHEDRAL",
    "COLOR_MODES",
    "IDENTITY_COLORS",
    "AugmentSkipped",
    "AugmentResult",
    "AugmentSpec",
    "AugmentOptions",
    "dihedral",
    "inverse_name",
    "compose",
    "parse_color_map",
    "random_color_map",
    "invert_colors",
    "apply_grid",
    "invert_grid",
    "apply_task",
    "try_apply_task",
    "check_fits",
    "random_spec",
    "draw_spec",
    "random_views",
]

# --------------------------------------------------------------------------- errors


class AugmentSkipped(Exception):
    """A view that cannot be made (a grid would exceed 30x30, too few train pairs ...).

    ``reason`` says why, naming the task, pair and grid size where known.
    """

    def __init__(
        self, reason: str, *, task: str | None = None, pair: str | None = None, shape: tuple[int, int] | None = None
    ):
        self.reason = reason
        self.task = task
        self.pair = pair
        self.shape = shape
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [w for w in (f"task {self.task}" if self.task else None, self.pair) if w]
        return (", ".join(where) + ": " if where else "") + self.reason


@dataclass(frozen=True)
class AugmentResult:
    """Outcome of :func:`try_apply_task`: the augmented task, or ``None`` and the reason it was skipped."""

    task: Task | None
    spec: AugmentSpec
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.task is not None


# --------------------------------------------------------------------------- dihedral group

#: The 8 dihedral transforms. ``rot90`` is a quarter turn clockwise; ``flip_h`` mirrors left<->right;
#: ``flip_v`` mirrors top<->bottom; ``transpose`` mirrors on the main diagonal, ``antitranspose`` on the other one.
DIHEDRAL: tuple[str, ...] = ("identity", "rot90", "rot180", "rot270", "flip_h", "flip_v", "transpose", "antitranspose")

# Each element written as (r, f): x -> R^r(F^f(x)) with R = rot90 (clockwise) and F = flip_h.
_RF: dict[str, tuple[int, int]] = {
    "identity": (0, 0),
    "rot90": (1, 0),
    "rot180": (2, 0),
    "rot270": (3, 0),
    "flip_h": (0, 1),
    "antitranspose": (1, 1),
    "flip_v": (2, 1),
    "transpose": (3, 1),
}
_NAME_OF_RF = {rf: name for name, rf in _RF.items()}

_VIEWS = {
    "identity": lambda g: g,
    "rot90": lambda g: g[::-1].T,
    "rot180": lambda g: g[::-1, ::-1],
    "rot270": lambda g: g[:, ::-1].T,
    "flip_h": lambda g: g[:, ::-1],
    "flip_v": lambda g: g[::-1],
    "transpose": lambda g: g.T,
    "antitranspose": lambda g: g[::-1, ::-1].T,
}


def _check_dihedral(name: Any) -> str:
    if name not in _RF:
        raise ValueError(f"unknown transform {name!r}; choose one of: {', '.join(DIHEDRAL)}")
    return name


def dihedral(grid: Grid, name: str) -> Grid:
    """Apply the dihedral transform ``name`` to ``grid`` (returns a view when possible)."""
    return _VIEWS[_check_dihedral(name)](grid)


def compose(a: str, b: str) -> str:
    """The single dihedral element equal to applying ``a`` first, then ``b``."""
    r1, f1 = _RF[_check_dihedral(a)]
    r2, f2 = _RF[_check_dihedral(b)]
    # R^r2 F^f2 R^r1 F^f1 = R^(r2 + (-1)^f2 r1) F^(f1+f2), since F R F = R^-1.
    return _NAME_OF_RF[((r2 + (-r1 if f2 else r1)) % 4, f1 ^ f2)]


def inverse_name(name: str) -> str:
    """The dihedral transform that undoes ``name`` (reflections are their own inverse)."""
    r, f = _RF[_check_dihedral(name)]
    return name if f else _NAME_OF_RF[(-r % 4, 0)]


#: ``COMPOSE_TABLE[a][b] == compose(a, b)``
COMPOSE_TABLE: dict[str, dict[str, str]] = {a: {b: compose(a, b) for b in DIHEDRAL} for a in DIHEDRAL}
INVERSE: dict[str, str] = {n: inverse_name(n) for n in DIHEDRAL}

# --------------------------------------------------------------------------- colours

IDENTITY_COLORS: tuple[int, ...] = tuple(range(10))
#: colour modes of :class:`AugmentOptions` besides an explicit map
COLOR_MODES: tuple[str, ...] = ("keep-bg", "all", "none")


def _check_permutation(colors: Any) -> tuple[int, ...]:
    try:
        perm = tuple(colors)
    except TypeError:
        raise ValueError(f"colour map must be 10 colours, got {colors!r}") from None
    if len(perm) != 10 or not all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= 9 for c in perm
    ):
        raise ValueError(f"colour map must be 10 integers 0-9 (colour c goes to map[c]), got {list(perm)!r}")
    perm = tuple(int(c) for c in perm)
    if len(set(perm)) != 10:
        seen: dict[int, int] = {}
        for src, dst in enumerate(perm):
            if dst in seen:
                missing = sorted(set(range(10)) - set(perm))
                raise ValueError(
                    f"colour map {''.join(map(str, perm))} is not a bijection: colours {seen[dst]} and "
                    f"{src} both go to {dst}; no colour goes to {', '.join(map(str, missing))}"
                )
            seen[dst] = src
    return perm


def parse_color_map(text: str) -> tuple[int, ...]:
    """Parse an explicit colour map: a 10-digit string (``"0213456789"``: colour c goes to digit c) or pairs
    ``"1:2,2:1"`` (unlisted colours stay). The map must be a bijection; errors name the bad value."""
    s = text.strip()
    if re.fullmatch(r"\d{10}", s):
        return _check_permutation(int(ch) for ch in s)
    if not s or not re.fullmatch(r"\s*\d\s*:\s*\d\s*(,\s*\d\s*:\s*\d\s*)*,?\s*", s):
        raise ValueError(f"bad colour map {text!r}: use 10 digits like 0213456789 or pairs like 1:2,2:1")
    perm = list(range(10))
    sources: set[int] = set()
    for item in filter(None, (p.strip() for p in s.split(","))):
        a, b = (int(x) for x in item.split(":"))
        if a in sources:
            raise ValueError(f"bad colour map {text!r}: colour {a} is mapped twice")
        sources.add(a)
        perm[a] = b
    try:
        return _check_permutation(perm)
    except ValueError as e:
        raise ValueError(f"bad colour map {text!r}: {e}") from None


def random_color_map(rng: np.random.Generator, move_bg: bool = False) -> tuple[int, ...]:
    """A random permutation of the colours; 0 stays unless ``move_bg``."""
    if move_bg:
        return tuple(rng.permutation(10).tolist())
    return (0, *(rng.permutation(9) + 1).tolist())


def invert_colors(colors: Sequence[int]) -> tuple[int, ...]:
    """The inverse permutation of ``colors``."""
    inv = [0] * 10
    for src, dst in enumerate(_check_permutation(colors)):
        inv[dst] = src
    return tuple(inv)


# --------------------------------------------------------------------------- composition steps


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class AugmentSpec:
    """One augmented view of a task; JSON-able and exactly invertible.

    Grids go through ``geometric``, then ``colors``, then ``steps`` in order; the train pairs are reordered by
    ``order`` (``order[i]`` is the original index of the new i-th train pair). ``seed`` records what
    :func:`random_spec` drew it from (informational; the other fields fully define the view).
    """

    geometric: str = "identity"
    colors: tuple[int, ...] = IDENTITY_COLORS
    order: tuple[int, ...] | None = None
    steps: tuple[Step, ...] = ()
    seed: int | None = None

    VERSION: ClassVar[int] = 1

    def __post_init__(self) -> None:
        _check_dihedral(self.geometric)
        object.__setattr__(self, "colors", _check_permutation(self.colors))
        if self.order is not None:
            order = tuple(self.order)
            if sorted(order) != list(range(len(order))) or not all(type(i) is int for i in order):
                raise ValueError(f"train order must be a permutation of 0..n-1, got {list(order)!r}")
            object.__setattr__(self, "order", order)
        steps = tuple(self.steps)
        for s in steps:
            if not isinstance(s, _StepBase):
                raise ValueError(f"steps must be Upscale/Pad/Mirror/Tile objects, got {s!r}")
        object.__setattr__(self, "steps", steps)
        if self.seed is not None and type(self.seed) is not int:
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")

    @classmethod
    def _trusted(
        cls,
        geometric: str,
        colors: tuple[int, ...],
        order: tuple[int, ...] | None,
        steps: tuple[Step, ...],
        seed: int | None,
    ) -> AugmentSpec:
        """A spec of fields already valid by construction (:func:`draw_spec`'s draws), without
        :meth:`__post_init__`'s checks."""
        spec = object.__new__(cls)
        fields = {"geometric": geometric, "colors": colors, "order": order, "steps": steps, "seed": seed}
        for name, value in fields.items():
            object.__setattr__(spec, name, value)
        return spec

    @cached_property
    def _lut(self) -> np.ndarray:
        return np.array(self.colors, dtype=np.uint8)

    @cached_property
    def _inv_lut(self) -> np.ndarray:
        return np.array(invert_colors(self.colors), dtype=np.uint8)

    @property
    def is_identity(self) -> bool:
        return (
            self.geometric == "identity"
            and self.colors == IDENTITY_COLORS
            and not self.steps
            and (self.order is None or self.order == tuple(range(len(self.order))))
        )

    def describe(self) -> str:
        """One line for people, e.g. ``rot90, colours 0325416789, train order 2 0 1, steps upscale:2x2:input``."""
        parts = [self.geometric]
        parts.append(
            "colours unchanged" if self.colors == IDENTITY_COLORS else "colours " + "".join(map(str, self.colors))
        )
        if self.order is not None:
            parts.append("train order " + " ".join(map(str, self.order)))
        if self.steps:
            parts.append("steps " + " ".join(map(str, self.steps)))
        return ", ".join(parts)

    def to_json(self) -> dict:
        return {
            "version": self.VERSION,
            "geometric": self.geometric,
            "colors": list(self.colors),
            "order": list(self.order) if self.order is not None else None,
            "steps": [s.to_json() for s in self.steps],
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, d: Any) -> AugmentSpec:
        if not isinstance(d, dict):
            raise ValueError(f"an augment spec must be a JSON object, got {d!r}")
        known = {"version", "geometric", "colors", "order", "steps", "seed"}
        extra = set(d) - known
        if extra:
            raise ValueError(f"unknown field(s) in augment spec: {', '.join(sorted(extra))}")
        if d.get("version", cls.VERSION) != cls.VERSION:
            raise ValueError(f"augment spec version {d.get('version')!r} is not supported (expected {cls.VERSION})")
        steps = d.get("steps") or []
        if not isinstance(steps, list):
            raise ValueError(f"'steps' must be a list, got {steps!r}")
        order = d.get("order")
        return cls(
            geometric=d.get("geometric", "identity"),
            colors=tuple(d.get("colors", IDENTITY_COLORS)),
            order=tuple(order) if order is not None else None,
            steps=tuple(step_from_json(s) for s in steps),
            seed=d.get("seed"),
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be 'input' or 'output', got {role!r}")


def _check_grid(grid: Any) -> Grid:
    g = np.asarray(grid)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"a grid must be a non-empty 2-D array, got shape {g.shape}")
    if not np.issubdtype(g.dtype, np.integer):
        raise ValueError(f"grid cells must be integers 0-9, got dtype {g.dtype}")
    if g.dtype != np.uint8 and (g.min() < 0 or g.max() > 9) or g.max() > 9:
        raise ValueError(f"grid cells must be integers 0-9, got values from {int(g.min())} to {int(g.max())}")
    return g.astype(np.uint8, copy=False)


def _apply(g: Grid, spec: AugmentSpec, role: str) -> Grid:
    out = spec._lut[_VIEWS[spec.geometric](g)]
    for step in spec.steps:
        if step.applies_to(role):
            h, w = step.out_shape(*out.shape)
            if h > MAX_SIDE or w > MAX_SIDE:
                raise AugmentSkipped(
                    f"{role} grid {_shape(g)}: {step} makes it {h}x{w}, over the {MAX_SIDE}x{MAX_SIDE} limit",
                    shape=(h, w),
                )
            out = step.apply(out)
    return out


def apply_grid(grid: Grid, spec: AugmentSpec, role: str = "output") -> Grid:
    """Map one grid of a task into the augmented frame (``role`` picks which steps apply).

    Raises :class:`AugmentSkipped` when the result would exceed 30x30."""
    _check_role(role)
    return _apply(_check_grid(grid), spec, role)


def invert_grid(grid: Grid, spec: AugmentSpec, role: str = "output", strict: bool = True) -> Grid:
    """Map a grid of the augmented frame (e.g. a prediction) back to the original frame.

    Raises :class:`InverseError` when the grid cannot come from ``spec`` (wrong shape; with ``strict``, also
    non-uniform upscale blocks, a border of another colour, unequal tiles or mirror halves)."""
    _check_role(role)
    g = _check_grid(grid)
    for step in reversed(spec.steps):
        if step.applies_to(role):
            g = step.invert(g, strict=strict)
    return np.ascontiguousarray(_VIEWS[INVERSE[spec.geometric]](spec._inv_lut[g]))


def _pair_name(kind: str, i: int) -> str:
    return f"{kind} pair {i}"


def apply_task(task: Task, spec: AugmentSpec) -> Task:
    """The augmented view of ``task`` (same id and source). Raises :class:`AugmentSkipped` naming the task, the
    pair and the size when a grid would exceed 30x30, and ValueError when ``spec.order`` does not fit the task."""
    train = task.train
    if spec.order is not None:
        if len(spec.order) != len(train):
            raise ValueError(
                f"task {task.id}: spec train order {list(spec.order)} has {len(spec.order)} entries "
                f"but the task has {len(train)} train pairs"
            )
        train = tuple(train[i] for i in spec.order)
    new_train: list[Pair] = []
    new_test: list[Pair] = []
    for kind, src, dst in (("train", train, new_train), ("test", task.test, new_test)):
        for i, p in enumerate(src):
            try:
                inp = _apply(p.input, spec, "input")
                out = None if p.output is None else _apply(p.output, spec, "output")
            except AugmentSkipped as e:
                raise AugmentSkipped(e.reason, task=task.id, pair=_pair_name(kind, i), shape=e.shape) from None
            dst.append(Pair(inp, out))
    return Task(task.id, tuple(new_train), tuple(new_test), source=task.source)


def check_fits(task: Task, spec: AugmentSpec) -> str | None:
    """Why ``spec`` cannot be applied to ``task`` (a grid over 30x30, a wrong train order), or None when it can.
    Computes shapes only."""
    if spec.order is not None and len(spec.order) != len(task.train):
        return (
            f"task {task.id}: spec train order has {len(spec.order)} entries but the task has "
            f"{len(task.train)} train pairs"
        )
    swap = _RF[spec.geometric][0] % 2 == 1  # rot90, rot270, transpose, antitranspose swap height and width
    for kind, pairs in (("train", task.train), ("test", task.test)):
        for i, p in enumerate(pairs):
            for role, g in (("input", p.input), ("output", p.output)):
                if g is None:
                    continue
                h, w = g.shape[::-1] if swap else g.shape
                for step in spec.steps:
                    if step.applies_to(role):
                        h, w = step.out_shape(h, w)
                        if h > MAX_SIDE or w > MAX_SIDE:
                            return str(
                                AugmentSkipped(
                                    f"{role} grid {_shape(g)}: {step} makes it {h}x{w}, over the "
                                    f"{MAX_SIDE}x{MAX_SIDE} limit",
                                    task=task.id,
                                    pair=_pair_name(kind, i),
                                )
                            )
    return None


def try_apply_task(task: Task, spec: AugmentSpec) -> AugmentResult:
    """Like :func:`apply_task` but reports a skipped view instead of raising."""
    try:
        return AugmentResult(apply_task(task, spec), spec)
    except AugmentSkipped as e:
        return AugmentResult(None, spec, str(e))
    except ValueError as e:
        return AugmentResult(None, spec, str(e))


# --------------------------------------------------------------------------- options and random specs


@dataclass(frozen=True)
class AugmentOptions(Options):
    """Which augmentations :func:`random_spec` may draw: the typed config a training run saves."""

    TITLE: ClassVar[str] = "augment"
    GROUP: ClassVar[str] = "Augmentation"

    transforms: tuple[str, ...] = option(
        DIHEDRAL, "dihedral transforms to draw from, uniformly ('identity' alone: none)", choices=DIHEDRAL, min_len=1
    )
    colors: str = option(
        "keep-bg",
        "colour permutation: 'keep-bg' (shuffle 1-9, keep 0), 'all' (shuffle 0-9), "
        "'none', or an explicit map like 0213456789 or 1:2,2:1",
        suggestions=COLOR_MODES,
    )
    p_bg: float = option(
        0.0,
        "with 'keep-bg': probability that a colour map shuffles all of 0-9, moving the "
        "background 0 too (arc24 and the seed experiment: 0.1, so 0 moves in about 9 % of the maps; "
        "ttft's default: 0)",
        lo=0.0,
        hi=1.0,
    )
    shuffle: bool = option(True, "reorder the train pairs at random")
    compose: tuple[str, ...] = option(
        (),
        "composition steps applied after the transform and colours, in order: a "
        "kind (upscale, pad, mirror, tile) for random parameters, or an explicit step "
        "like upscale:2x2:input, pad:1:5:output, mirror:h:both, tile:2x2:input",
    )
    p_compose: float = option(1.0, "probability that each listed composition step is used", lo=0.0, hi=1.0)
    compose_targets: tuple[str, ...] = option(
        ("input", "output"), "what random composition steps may apply to", choices=TARGETS, min_len=1
    )
    seed: int = option(0, "seed used when random_spec is given no seed or generator", lo=0, flag="--augment-seed")

    def check(self) -> None:
        if self.colors not in COLOR_MODES:
            if not re.fullmatch(r"[\d:,\s]+", self.colors):
                raise self.bad(
                    "colors", f"must be one of {', '.join(COLOR_MODES)} or a colour map like 0213456789 or 1:2,2:1"
                )
            try:
                parse_color_map(self.colors)
            except ValueError as e:
                raise ConfigError(f"colors: {e}") from None
        for c in self.compose:
            if c not in STEP_KINDS:
                try:
                    parse_step(c)
                except ValueError as e:
                    raise ConfigError(f"compose: {e}") from None


def random_spec(
    seed: int | np.random.Generator | None = None, options: AugmentOptions | None = None, task: Task | None = None
) -> AugmentSpec:
    """Draw a spec from ``options``. ``seed`` is an int (recorded in the spec), a numpy Generator, or None for
    ``options.seed``. ``task`` is needed when ``options.shuffle`` is on (the order depends on its train pairs)."""
    opts = (options or AugmentOptions()).validate()
    if seed is None:
        seed = opts.seed
    if isinstance(seed, np.random.Generator):
        rng, recorded = seed, None
    elif type(seed) is int:
        rng, recorded = np.random.default_rng(seed), seed
    else:
        raise ValueError(f"seed must be an integer or a numpy Generator, got {seed!r}")
    if opts.shuffle and task is None:
        raise ValueError("random_spec needs the task when options.shuffle is on (to draw a train order)")
    return draw_spec(rng, opts, len(task.train) if task is not None else 0, recorded)


def draw_spec(rng: np.random.Generator, opts: AugmentOptions, n_train: int, seed: int | None = None) -> AugmentSpec:
    """The spec :func:`random_spec` draws from ``rng`` for a task with ``n_train`` train pairs, the same draws in
    the same order, for options already validated (the sample stream validates its frozen options once, then draws
    thousands of specs a second): neither the options nor the drawn values are checked again."""
    geometric = opts.transforms[int(rng.integers(len(opts.transforms)))]
    if opts.colors == "none":
        colors = IDENTITY_COLORS
    elif opts.colors == "all":
        colors = random_color_map(rng, move_bg=True)
    elif opts.colors == "keep-bg":
        colors = random_color_map(rng, move_bg=bool(opts.p_bg) and rng.random() < opts.p_bg)
    else:
        colors = parse_color_map(opts.colors)
    order = tuple(rng.permutation(n_train).tolist()) if opts.shuffle else None
    steps = []
    for c in opts.compose:
        if opts.p_compose < 1.0 and rng.random() >= opts.p_compose:
            continue
        steps.append(_random_step(c, rng, opts.compose_targets) if c in STEP_KINDS else parse_step(c))
    return AugmentSpec._trusted(geometric, colors, order, tuple(steps), seed)


def random_views(
    task: Task, n: int, options: AugmentOptions | None = None, seed: int | None = None, max_tries: int | None = None
) -> list[tuple[AugmentSpec, Task]]:
    """Up to ``n`` augmented views of ``task`` with specs drawn from seeds ``seed, seed+1, ...`` (default
    ``options.seed``); views that would exceed 30x30 are skipped (at most ``max_tries`` draws, default 4n)."""
    opts = (options or AugmentOptions()).validate()
    base = opts.seed if seed is None else seed
    views: list[tuple[AugmentSpec, Task]] = []
    for k in range(max_tries if max_tries is not None else 4 * n):
        if len(views) >= n:
            break
        spec = random_spec(base + k, opts, task)
        res = try_apply_task(task, spec)
        if res.task is not None:
            views.append((spec, res.task))
    return views


# --------------------------------------------------------------------------- leave-out tasks

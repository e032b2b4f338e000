"""A sweep's rows, before any work: option names resolved to their declarations, values parsed and validated by
those declarations, a grid expanded, rows read from a file, and every row's training and prediction configs built
and validated.

A row is a name and ``options``: ``{key: value}`` where a key is

- ``ttft`` (:class:`RowOptions`: off for a row without TTFT, the baseline);
- a sweep option (``lr``, ``steps``, ``lora_r``, ``views``, ``per_task``, ``profile``, ``threads``, … of
  :class:`SweepConfig`), which the row's training and prediction follow as the sweep's own values do (``profile``
  and ``threads`` go to both stages; a row's ``train.profile``/``predict.profile``, ``train.threads``/
  ``predict.threads`` win for their stage);
- ``train.<path>``: any option of :class:`TrainConfig` (``train.augment.colors``, ``train.leave_out``,
  ``train.scheduler``, ``train.profile``, …);
- ``predict.<path>``: any option of :class:`PredictConfig` (``predict.decode``, ``predict.score``, …).

A name may be written without its ``train.``/``predict.`` prefix, as its dotted path or its flag (``colors``,
``lora-dropout``, ``--decode``) when that names one option only. The task subset and the seeds are the sweep's for
every row (:data:`SHARED_ONLY`, :data:`FIXED`): a row that sets them is refused.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttft.engine.experiment_config import SHARED_ONLY, RowOptions, SweepConfig
from ttft.engine.predict_config import PredictConfig
from ttft.engine.train_config import TrainConfig
from ttft.options import ConfigError, Option, Options, _parser_for, check_value, flat_options, set_path
from ttft.runs.experiments import row_folder

#: training and prediction options the sweep sets for every row (the same tasks, seeds, model and device)
FIXED = {
    "train": (
        "mode",
        "dataset",
        "more_datasets",
        "dataset_weights",
        "tasks",
        "max_task_tokens",
        "seed",
        "augment.seed",
        "device",
        "model.base_model",
    ),
    "predict": ("run", "base_model", "dataset", "tasks", "max_task_tokens", "seed", "device", "out", "name"),
}
SCOPES = {"row": RowOptions, "sweep": SweepConfig, "train": TrainConfig, "predict": PredictConfig}
#: how a bool is written in a grid
BOOLS = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}
#: separates a grid's values; a list option's values (each a comma-separated list) are separated by ``|``
SEP, LIST_SEP = ",", "|"


@dataclass(frozen=True)
class Target:
    """The declared option a row key names."""

    scope: str  # row | sweep | train | predict
    option: Option  # its path is the dotted path inside its config

    @property
    def key(self) -> str:
        return self.option.path if self.scope in ("row", "sweep") else f"{self.scope}.{self.option.path}"


@dataclass
class Row:
    name: str
    options: dict[str, Any] = field(default_factory=dict)  # canonical keys (Target.key) -> JSON values

    def to_json(self) -> dict:
        return {"name": self.name, "options": dict(self.options)}


def _norm(text: str) -> str:
    return text.strip().lstrip("-").replace("-", "_")


def _matches(cls: type[Options], name: str) -> list[Option]:
    return [o for o in flat_options(cls) if o.path == name or (o.flag and _norm(o.flag) == name)]


def sweepable() -> list[str]:
    """Every key a row may set, in a form's order: the row's and sweep's options, then training and prediction."""
    keys = [o.path for o in flat_options(RowOptions)]
    keys += [o.path for o in flat_options(SweepConfig) if o.path not in SHARED_ONLY]
    for scope in ("train", "predict"):
        keys += [f"{scope}.{o.path}" for o in flat_options(SCOPES[scope]) if o.path not in FIXED[scope]]
    return keys


def resolve(name: str) -> Target:
    """The option a row key names; ConfigError for an unknown, ambiguous or fixed one."""
    text = _norm(name)
    scope_hint, _, rest = text.partition(".")
    if scope_hint in ("train", "predict") and rest:
        scopes, text = [scope_hint], rest
    else:
        for scope in ("row", "sweep"):
            got = _matches(SCOPES[scope], text)
            if got:
                if scope == "sweep" and got[0].path in SHARED_ONLY:
                    raise ConfigError(
                        f"{name}: is shared by every row (the same task subset and seeds); set it for the whole "
                        f"sweep with --{got[0].path.replace('_', '-')}"
                    )
                return Target(scope, got[0])
        scopes = ["train", "predict"]
    found = [(s, o) for s in scopes for o in _matches(SCOPES[s], text)]
    if not found:
        keys = sweepable()
        close = difflib.get_close_matches(text, list(dict.fromkeys([k.split(".", 1)[-1] for k in keys] + keys)), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"{name}: unknown option{hint}; a row sets a sweep option (lr, steps, lora_r, views, …), ttft, "
            "train.<option> or predict.<option> (python -m ttft train --help, predict --help)"
        )
    if len(found) > 1:
        spell = " or ".join(f"{s}.{o.path}" for s, o in found)
        raise ConfigError(f"{name}: names more than one option; write {spell}")
    scope, o = found[0]
    if o.path in FIXED[scope]:
        raise ConfigError(
            f"{name}: {scope}.{o.path} is set by the sweep for every row (the same tasks, seeds, model and device)"
        )
    return Target(scope, o)


def parse_text(t: Target, text: str) -> Any:
    """A value written on the command line, parsed and checked by the option's declaration (as JSON)."""
    o, raw = t.option, text.strip()
    if o.kind == "bool":
        if raw.lower() not in BOOLS:
            raise ConfigError(f"{t.key}: must be true or false, got {text!r}")
        v: Any = BOOLS[raw.lower()]
    else:
        try:
            v = _parser_for(o)(raw)
        except (argparse.ArgumentTypeError, ValueError) as e:
            raise ConfigError(f"{t.key}: {e}") from None
    return _checked(t, v, text)


def parse_json(t: Target, v: Any) -> Any:
    """A value from a rows file (JSON; text is parsed as on the command line), checked by its declaration."""
    o = t.option
    if isinstance(v, str) and o.kind not in ("str", "list"):
        return parse_text(t, v)
    if isinstance(v, str) and o.kind == "list":
        return parse_text(t, v)
    if o.kind == "float" and type(v) is int:
        v = float(v)
    if o.kind == "list" and isinstance(v, list):
        v = tuple(float(x) if o.item == "float" and type(x) is int else x for x in v)
    return _checked(t, v, v)


def _checked(t: Target, v: Any, shown: Any) -> Any:
    why = check_value(t.option, v)
    if why:
        raise ConfigError(f"{t.key}: {why}, got {shown!r}")
    return list(v) if isinstance(v, tuple) else v


def parse_grid(specs: list[str]) -> list[Row]:
    """``["lr=1e-4,3e-4", "steps=30,60"]`` -> the rows of their product, in order (the last name varies fastest),
    named ``lr=1e-4 steps=30``. A list option's values are separated by ``|`` (``transforms=identity|rot90,flip_h``)."""
    axes: list[tuple[Target, str, list[tuple[str, Any]]]] = []
    seen: dict[str, str] = {}
    for spec in specs:
        name, eq, values = spec.partition("=")
        if not eq or not name.strip():
            raise ConfigError(f"--grid: write NAME=V1,V2,…, got {spec!r}")
        t = resolve(name)
        if t.key in seen:
            raise ConfigError(f"--grid: {t.key} is given twice ({seen[t.key]!r} and {spec!r})")
        seen[t.key] = spec
        texts = [x.strip() for x in values.split(LIST_SEP if t.option.kind == "list" else SEP)]
        if not any(texts) or not all(texts):
            raise ConfigError(f"--grid {name.strip()}: an empty value in {values!r}")
        if len(set(texts)) < len(texts):
            raise ConfigError(f"--grid {name.strip()}: a value is given twice in {values!r}")
        axes.append((t, name.strip(), [(x, parse_text(t, x)) for x in texts]))
    rows: list[Row] = []
    for combo in [] if not axes else itertools.product(*[vals for _, _, vals in axes]):
        names = [f"{label}={text}" for (_, label, _), (text, _) in zip(axes, combo)]
        rows.append(Row(" ".join(names), {t.key: v for (t, _, _), (_, v) in zip(axes, combo)}))
    return rows


def rows_of_json(d: Any, where: str) -> list[Row]:
    """Rows from their JSON form: a list of ``{"name": text, "options": {NAME: value, …}}``; every value checked."""
    if not isinstance(d, list) or not d:
        raise ConfigError(f'{where}: must be a non-empty JSON list of {{"name", "options"}} objects')
    rows = []
    for i, r in enumerate(d, 1):
        at = f"{where}: row {i}"
        if not isinstance(r, dict) or set(r) - {"name", "options"} or not isinstance(r.get("options", {}), dict):
            raise ConfigError(f"{at}: must be an object with a name and options ({{NAME: value}}), got {r!r:.80}")
        name = r.get("name")
        if not isinstance(name, str) or not name.strip() or any(ord(c) < 32 for c in name):
            raise ConfigError(f"{at}: name must be a line of text, got {name!r:.80}")
        opts: dict[str, Any] = {}
        for k, v in (r.get("options") or {}).items():
            try:
                t = resolve(str(k))
                if t.key in opts:
                    raise ConfigError(f"{t.key}: is set twice")
                opts[t.key] = parse_json(t, v)
            except ConfigError as e:
                raise ConfigError(f"{at} ({name}): {e}") from None
        rows.append(Row(name.strip(), opts))
    return rows


def read_rows_file(path: str | Path) -> list[Row]:
    p = Path(path).expanduser()
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--rows-from {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--rows-from {path}: cannot read it ({e})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--rows-from {path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    return rows_of_json(d, f"--rows-from {path}")


def combine(first: list[Row], grid: list[Row]) -> list[Row]:
    """Every row of ``first`` (a file's, a preset's) with every row of the grid; either alone when the other is
    empty."""
    if not first or not grid:
        return first or grid
    out = []
    for a in first:
        for b in grid:
            both = set(a.options) & set(b.options)
            if both:
                raise ConfigError(f"row {a.name!r} sets {', '.join(sorted(both))}, which the grid sweeps too")
            out.append(Row(f"{a.name} {b.name}", {**a.options, **b.options}))
    return out


# --------------------------------------------------------------------------- a row's configs


@dataclass
class RowPlan:
    """What a row runs: its sweep options, its TTFT run's config (None: no TTFT) and its prediction's (None: no
    prediction), and its folder."""

    name: str
    options: dict[str, Any]
    folder: str
    sweep: SweepConfig
    train: TrainConfig | None
    predict: PredictConfig | None


def _over(options: dict[str, Any], scope: str) -> dict[str, Any]:
    pre = scope + "."
    return {k[len(pre) :]: v for k, v in options.items() if k.startswith(pre)}


def train_config(c: SweepConfig, ids: list[str], over: dict[str, Any] | None = None) -> TrainConfig:
    """A row's TTFT run: a profile's values (the row's ``train.profile``, else the sweep's ``profile``), under the
    sweep's options (its ``threads`` too), under the row's ``train.*`` options; validated."""
    from ttft.core.profiles import profile_values
    from ttft.options import _merge

    over = over or {}
    d = TrainConfig().to_json()
    _merge(d, profile_values(over.get("profile", c.profile), "train"))
    explicit = {
        "mode": "ttft",
        "dataset": c.dataset,
        "tasks": list(ids),
        "per_task": c.per_task,
        "task_weighting": "task",
        "steps": c.steps,
        "lr": c.lr,
        "seed": c.seed,
        "device": c.device,
        "threads": c.threads,
        "model": {"base_model": c.base_model, "lora_r": c.lora_r, "lora_alpha": c.lora_alpha},
        "encoding": {"max_seq_len": c.max_seq_len},
        "augment": {"seed": c.seed},
    }
    _merge(d, explicit)
    for path, v in over.items():
        set_path(d, path, v)
    if "save_steps" not in over:
        d["save_steps"] = max(d["steps"], 1000)
    if "logging_steps" not in over:
        d["logging_steps"] = max(1, d["steps"] // 10)
    return TrainConfig.from_json(d)


def predict_config(c: SweepConfig, ids: list[str], run: str | None, out: str, over: dict[str, Any] | None = None):
    """A row's prediction: of its run (``run``), else of the sweep's base model; a profile's values (the row's
    ``predict.profile``, else the sweep's ``profile``), under the sweep's dataset, tasks, views, device and threads,
    then the row's ``predict.*`` options; validated."""
    from ttft.core.profiles import profile_values
    from ttft.options import _merge

    over = over or {}
    d = PredictConfig().to_json()
    _merge(d, profile_values(over.get("profile", c.profile), "predict"))
    explicit = {
        "run": run,
        "base_model": None if run else c.base_model,
        "dataset": c.dataset,
        "tasks": list(ids),
        "views": c.views,
        "device": c.device,
        "threads": c.threads,
        "out": out,
    }
    _merge(d, explicit)
    for path, v in over.items():
        set_path(d, path, v)
    return PredictConfig.from_json(d)


def plan_row(c: SweepConfig, row: Row, ids: list[str], out: Path) -> RowPlan:
    """Every config of one row, validated; ConfigError naming the row and the option."""
    try:
        for k, v in row.options.items():  # a row read back from config.json is checked again
            parse_json(resolve(k), v)
        own = {k: v for k, v in row.options.items() if "." not in k and k != "ttft"}
        sweep = SweepConfig.from_json({**c.shared().to_json(), **own})
        ttft = row.options.get("ttft", True)
        rdir = Path(out) / "rows" / row_folder(row.name)
        tcfg = train_config(sweep, ids, _over(row.options, "train")) if ttft else None
        if not sweep.predict and not ttft:
            raise ConfigError("ttft: a row without TTFT is only measured by a prediction, and predict is off")
        pcfg = None
        if sweep.predict:
            run = str(rdir / "run") if ttft else None
            pcfg = predict_config(sweep, ids, run, str(rdir / "predictions"), _over(row.options, "predict"))
    except ConfigError as e:
        raise type(e)(f"row {row.name!r}: {e}") from None
    return RowPlan(row.name, dict(row.options), row_folder(row.name), sweep, tcfg, pcfg)


def plan(c: SweepConfig, rows: list[Row], ids: list[str], out: Path) -> list[RowPlan]:
    """Every row's configs (:func:`plan_row`); rows must have distinct names and folders."""
    if not rows:
        raise ConfigError("rows: a sweep needs at least one row (--grid NAME=V1,V2, --rows-from FILE or --preset)")
    seen: dict[str, str] = {}
    for r in rows:
        f = row_folder(r.name)
        if f in seen:
            raise ConfigError(f"rows: {r.name!r} and {seen[f]!r} have the same name or folder ({f})")
        seen[f] = r.name
    return [plan_row(c, r, ids, out) for r in rows]

"""Forms generated from a config's option declarations (:mod:`ttft.options`): one widget per option, in tabs by
group, read back into a validated config. The Fine-tune, Predictions and Experiments forms are all this one form.

Widgets by declaration: a bool is a checkbox; a closed set of values a select box (a list of them a multiselect);
suggested values a select box that accepts new ones; an int a number input within the bounds; a float or text a
text input (read back exactly, errors naming the option). ``widget="dataset"`` and ``widget="model"`` get a picker
of bundled datasets / the embedded model with a path or hub id beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from ttft.core.data import BUNDLED
from ttft.engine.models import DEFAULT_MODEL
from ttft.options import ConfigError, Option, Options, flat_options, get_path, iter_paths, set_path

DATASET_PATH = "a path…"
BASE_SOURCES = ("embedded default", "local folder", "hub id")


@dataclass
class FormValues:
    """What a form read: the config JSON (None where a widget could not be read) and the first problems."""

    values: dict
    errors: list[str]


def _key(prefix: str, path: str) -> str:
    return f"{prefix}.{path}"


def picker_keys(prefix: str, o: Option) -> tuple[str, str]:
    """(choice key, text key) of a dataset or model picker: ``ft.dataset_src`` / ``ft.dataset_path``,
    ``ft.base_src`` / ``ft.model.base_model``."""
    if o.widget == "dataset":
        return f"{prefix}.{o.path}_src", f"{prefix}.{o.path}_path"
    return f"{prefix}.{o.name.removesuffix('_model')}_src", _key(prefix, o.path)


def _to_widget(o: Option, v: Any) -> Any:
    if o.kind == "float":
        return "" if v is None else repr(float(v))
    if o.kind == "list":
        return list(v) if o.choices is not None else ", ".join(map(str, v))
    if o.kind == "str" and o.choices is None and o.suggestions is None:
        return v or ""
    return v


def _from_widget(o: Option, v: Any) -> Any:
    if o.kind == "float":
        text = str(v).strip()
        if not text and o.optional:
            return None
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{o.path}: not a number: {text!r}") from None
    if o.kind == "list" and o.item == "float":  # numbers, comma-separated
        try:
            return [float(t) for t in str(v).replace("\n", ",").split(",") if t.strip()]
        except ValueError:
            raise ConfigError(f"{o.path}: not a list of numbers: {v!r}") from None
    if o.kind == "list":
        return (
            list(v) if o.choices is not None else [t.strip() for t in str(v).replace("\n", ",").split(",") if t.strip()]
        )
    if o.kind == "str" and o.choices is None:
        text = "" if v is None else str(v).strip()
        return None if (o.optional and not text) else text
    if o.kind == "int" and v is not None:
        return int(v)
    if v is None and not o.optional:
        raise ConfigError(f"{o.path}: a value is needed")
    return v


def config_to_state(cls: type[Options], prefix: str, d: dict) -> Options:
    """Put a config into a form's widgets (defaults filled in); the config is validated first, so a bad file
    changes nothing and raises ConfigError naming the option."""
    cfg = cls.from_json(d)
    full = cfg.to_json()
    for o in flat_options(cls):
        _set_widget(prefix, o, get_path(full, o.path))
    st.session_state[prefix + "._init"] = True
    return cfg


def preset(cls: type[Options], prefix: str, values: dict[str, Any]) -> None:
    """Set some options of a form (``{"dataset": ..., "tasks": [...]}``, dotted paths) before it is drawn, keeping
    the others as they are (the form starts from its defaults if it was never drawn)."""
    if prefix + "._init" not in st.session_state:
        config_to_state(cls, prefix, cls().to_json())  # type: ignore[call-arg]
    by_path = {o.path: o for o in flat_options(cls)}
    for path, v in iter_paths(values):  # nested dicts or dotted paths
        _set_widget(prefix, by_path[path], tuple(v) if isinstance(v, list) else v)


def _set_widget(prefix: str, o: Option, v: Any) -> None:
    if o.widget == "dataset":
        src_key, text_key = picker_keys(prefix, o)
        st.session_state[src_key] = v if (v in BUNDLED or v is None) else DATASET_PATH
        st.session_state[text_key] = "" if (v in BUNDLED or v is None) else v
    elif o.widget == "model":
        src_key, text_key = picker_keys(prefix, o)
        is_dir = v.startswith((".", "/", "~")) or Path(v).expanduser().is_dir()
        st.session_state[src_key] = (
            BASE_SOURCES[0] if v == DEFAULT_MODEL else BASE_SOURCES[1] if is_dir else BASE_SOURCES[2]
        )
        st.session_state[text_key] = "" if v == DEFAULT_MODEL else v
    else:
        st.session_state[_key(prefix, o.path)] = _to_widget(o, v)


def _help(o: Option) -> str:
    extra = f" ({o.bounds_text()})" if o.kind in ("int", "float") and o.bounds_text() else ""
    return f"{o.help}{extra}. Default: {o.describe_default()}."


#: configs whose ``profile`` option loads a reference system's values into the form (by their TITLE)
_PROFILE_KIND = {"training": "train", "prediction": "predict"}


def _apply_profile(cls: type[Options], prefix: str, key: str) -> None:
    """A profile was picked: its option values go into the form (the user can still change the others)."""
    from ttft.core.profiles import profile_values

    name = st.session_state.get(key)
    if name:
        preset(cls, prefix, profile_values(name, _PROFILE_KIND[cls.TITLE]))


def _widget(o: Option, prefix: str, c: Any, cls: type[Options] | None = None) -> Any:
    key = _key(prefix, o.path)
    kw: dict[str, Any] = dict(key=key, help=_help(o))
    if o.path == "profile" and cls is not None and cls.TITLE in _PROFILE_KIND:
        kw.update(on_change=_apply_profile, args=(cls, prefix, key))
    label = o.path.split(".")[-1]
    if o.widget == "dataset":
        return _dataset_widget(o, *picker_keys(prefix, o), c)
    if o.widget == "model":
        return _model_widget(o, *picker_keys(prefix, o), c)
    if o.kind == "bool":
        return c.checkbox(label, **kw)
    if o.kind == "list" and o.choices is not None:
        return c.multiselect(label, list(o.choices), **kw)
    if o.choices is not None:
        opts = ([None] if o.optional else []) + list(o.choices)
        return c.selectbox(label, opts, format_func=lambda v: "none" if v is None else str(v), **kw)
    if o.suggestions is not None:
        opts = list(o.suggestions)
        cur = st.session_state.get(key)
        if cur is not None and cur not in opts:
            opts.append(cur)
        return c.selectbox(label, opts, accept_new_options=True, **kw)
    if o.kind == "int":
        bounds = {k: int(v) for k, v in (("min_value", o.lo), ("max_value", o.hi)) if v is not None}
        if o.optional:
            return c.number_input(label, value=None, step=1, placeholder="none", **bounds, **kw)
        return c.number_input(label, step=1, **bounds, **kw)
    placeholder = {"float": "none" if o.optional else None, "list": "comma-separated"}.get(o.kind)
    if o.kind == "str" and o.optional:
        placeholder = "none"
    return c.text_input(label, placeholder=placeholder, **kw)


def _dataset_widget(o: Option, src_key: str, key: str, c: Any) -> str | None:
    opts = ([None] if o.optional else []) + [*BUNDLED, DATASET_PATH]
    choice = c.selectbox(
        o.path.split(".")[-1], opts, key=src_key, help=_help(o), format_func=lambda v: "(the run's)" if v is None else v
    )
    path = c.text_input(
        "dataset path",
        key=key,
        disabled=choice != DATASET_PATH,
        placeholder="a task file, a folder of tasks, or a Kaggle *_challenges.json",
    ).strip()
    return path if choice == DATASET_PATH else choice


def _model_widget(o: Option, src_key: str, key: str, c: Any) -> str:
    src = c.radio(o.path.split(".")[-1].replace("_", " "), BASE_SOURCES, key=src_key, horizontal=True, help=_help(o))
    if src == BASE_SOURCES[0]:
        c.text_input(
            "model folder or hub id", key=key, disabled=True, placeholder="the model shipped in ttft/assets/model"
        )
        return DEFAULT_MODEL
    ph = "/path/to/model_folder (config.json + weights)" if src == BASE_SOURCES[1] else "Qwen/Qwen2.5-0.5B-Instruct"
    return c.text_input(
        "model folder" if src == BASE_SOURCES[1] else "hub id",
        key=key,
        placeholder=ph,
        help="a hub id is downloaded when the job starts (needs network)",
    ).strip()


def groups_of(cls: type[Options], order: Sequence[str] = (), hide: Sequence[str] = ()) -> dict[str, list[Option]]:
    """The options of ``cls`` by form tab: the groups in ``order`` first, then the others as declared."""
    out: dict[str, list[Option]] = {g: [] for g in order}
    for o in flat_options(cls):
        if o.path not in hide:
            out.setdefault(o.group, []).append(o)
    return {g: os_ for g, os_ in out.items() if os_}


def config_form(
    cls: type[Options],
    prefix: str,
    order: Sequence[str] = (),
    hide: Sequence[str] = (),
    columns: int = 3,
    initial: dict | None = None,
) -> FormValues:
    """Every option of ``cls`` (but ``hide``) as widgets in tabs; returns the values read (as config JSON) and the
    problems found reading them. The widgets start from ``initial`` (or the defaults) the first time."""
    if prefix + "._init" not in st.session_state:
        config_to_state(cls, prefix, initial if initial is not None else cls().to_json())  # type: ignore[call-arg]
    values: dict[str, Any] = {}
    errors: list[str] = []
    groups = groups_of(cls, order, hide)
    tabs = st.tabs(list(groups), key=f"{prefix}._tabs") if len(groups) > 1 else [st.container()]
    for tab, (_, opts) in zip(tabs, groups.items()):
        cols = tab.columns(columns)
        i = 0
        for o in opts:
            c = tab.container() if o.widget == "model" else cols[i % columns]
            i += o.widget != "model"
            raw = _widget(o, prefix, c, cls)
            try:
                set_path(values, o.path, _from_widget(o, raw))
            except ConfigError as e:
                errors.append(str(e))
    return FormValues(values, errors)


def read_config(cls: type[Options], form: FormValues, base: dict | None = None) -> tuple[Options | None, str | None]:
    """The validated config of a form (over ``base`` for hidden options), or None and the first problem."""
    if form.errors:
        return None, form.errors[0]
    d = cls().to_json() if base is None else dict(base)  # type: ignore[call-arg]
    _merge(d, form.values)
    try:
        return cls.from_json(d), None
    except ConfigError as e:
        return None, str(e)


def _merge(into: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            into[k] = dict(into[k])
            _merge(into[k], v)
        else:
            into[k] = v

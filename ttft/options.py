"""The one declaration of every option.

A config is a dataclass deriving from :class:`Options` whose fields are declared with :func:`option` (type from the
annotation; default, help, choices, bounds and the flag in the declaration). From that one declaration come:

- strict validation (:meth:`Options.validate`): exact types (a bool is a bool, an int is not a bool, a float is
  finite), choices, bounds, lengths, then the config's own cross-option rules (:meth:`Options.check`); every message
  names the option (its dotted path, e.g. ``model.lora_r``) and the bad value;
- JSON (:meth:`Options.to_json` / :meth:`Options.from_json`): unknown keys are refused, nothing is coerced except a
  JSON list into a tuple and an int into a float;
- command-line flags (:func:`add_arguments`, :func:`apply_args`) with their real defaults in ``--help``;
- the command line rebuilt from a config (:func:`argv_of`), checked to parse back to the same config;
- the flat list of fields the app's forms are generated from (:func:`flat_options`).

Adding an option is one edit: a field with :func:`option` in its config.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

__all__ = [
    "ConfigError",
    "Option",
    "Options",
    "option",
    "flat_options",
    "add_arguments",
    "apply_args",
    "argv_of",
    "parse_list",
    "NONE_WORD",
]

#: how ``None`` is written on the command line for an optional option whose default is not None
NONE_WORD = "none"
#: the largest magnitude an integer option may have unless it says otherwise (a seed, a step count, ...)
INT_LIMIT = 2**63 - 1

T = TypeVar("T", bound="Options")


class ConfigError(ValueError):
    """An option that cannot be used; the message names the option and its value. The one error type of configs
    (the domain errors of models, predictions and jobs derive from it)."""


@dataclass(frozen=True)
class Option:
    """One declared option: where it is (``path``), its type and default, and everything derived from it."""

    name: str
    path: str
    kind: str  # bool | int | float | str | list | options
    optional: bool
    default: Any
    help: str
    choices: tuple | None = None  # closed set of values (for a list: of its elements)
    suggestions: tuple | None = None  # common values a form offers (open set)
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo < v instead of lo <= v
    min_len: int = 0  # lists
    flag: str | None = None  # None: no command-line flag
    group: str = "Other"
    widget: str | None = None  # a form widget hint: "dataset", "model", "tasks", "text"
    parse: Callable[[str], Any] | None = None  # command-line text -> value (default from the kind)
    nested: type[Options] | None = None  # the Options class of a nested config
    item: str = "str"  # a list's elements: str or float (bounds then apply to each element)
    repeat_into: str | None = None  # the list option (a sibling) that further occurrences of this flag go into

    @property
    def dest(self) -> str:
        return self.path.replace(".", "__")

    def describe_default(self) -> str:
        v = self.default
        if v is None:
            return NONE_WORD
        if isinstance(v, bool):
            return "on" if v else "off"
        if isinstance(v, tuple):
            return ",".join(map(str, v)) if v else "(none)"
        return repr(v) if isinstance(v, str) and v == "" else str(v)

    def bounds_text(self) -> str:
        """The allowed range in words: "a positive integer up to 4096", "between 0 and 1", ">= 1"."""
        lo, hi = _num(self.lo), _num(self.hi)
        upto = f" up to {hi}" if hi is not None else ""
        if self.kind == "int" and self.lo in (0, 1) and not self.lo_open:
            return ("a positive integer" if self.lo == 1 else "a non-negative integer") + upto
        if self.kind == "float" and self.lo == 0 and self.lo_open:
            return "a positive number" + upto
        if lo is None and hi is None:
            return ""
        if lo is not None and hi is not None:
            return f"between {lo} and {hi}" if not self.lo_open else f"in ({lo}, {hi}]"
        if lo is not None:
            return f"{'>' if self.lo_open else '>='} {lo}"
        return f"<= {hi}"


def _num(x: float | None) -> str | None:
    if x is None:
        return None
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    choices: Sequence | None = None,
    suggestions: Sequence | None = None,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    min_len: int = 0,
    flag: str | bool | None = True,
    group: str | None = None,
    widget: str | None = None,
    parse: Callable[[str], Any] | None = None,
    default_factory: Callable[[], Any] | None = None,
    repeat_into: str | None = None,
) -> Any:
    """A dataclass field that declares an option. ``flag=True``: ``--name-with-dashes``; a string: that flag;
    ``False``: no command-line flag (set through ``--config FILE``). ``repeat_into``: a repeatable flag, whose further
    values go into that (flagless) list option: ``--dataset A --dataset B`` gives dataset A, more_datasets [B]."""
    meta = {
        "ttft.option": dict(
            help=help,
            choices=tuple(choices) if choices is not None else None,
            suggestions=tuple(suggestions) if suggestions is not None else None,
            lo=lo,
            hi=hi,
            lo_open=lo_open,
            min_len=min_len,
            flag=flag,
            group=group,
            widget=widget,
            parse=parse,
            repeat_into=repeat_into,
        )
    }
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple, or default_factory, for a mutable default")
    return dataclasses.field(default=default, metadata=meta)


def _kind_of(tp: Any) -> tuple[str, bool, type[Options] | None, str]:
    """(kind, optional, nested class, list element kind) of an annotation."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"unsupported option type {tp!r}")
        kind, _, nested, item = _kind_of(rest[0])
        return kind, True, nested, item
    if origin is tuple or tp is tuple:
        if args and (len(args) != 2 or args[1] is not Ellipsis or args[0] not in (str, float)):
            raise TypeError(f"list options are tuple[str, ...] or tuple[float, ...], got {tp!r}")
        return "list", False, None, "float" if args and args[0] is float else "str"
    if isinstance(tp, type) and issubclass(tp, Options):
        return "options", False, tp, "str"
    if tp in (bool, int, float, str):
        return tp.__name__, False, None, "str"
    raise TypeError(f"unsupported option type {tp!r}")


class _HelpOf:
    """``Config.HELP``: {option name: help text}, read from the declarations."""

    def __get__(self, obj: Any, cls: type[Options]) -> dict[str, str]:
        return {o.name: o.help for o in cls.options() if o.kind != "options"}


class Options:
    """Base of every config. Subclasses are dataclasses whose fields are declared with :func:`option`."""

    HELP: ClassVar[_HelpOf] = _HelpOf()

    #: a name for messages ("training options"); subclasses set it
    TITLE: ClassVar[str] = "options"
    #: the form tab of options declared without a group
    GROUP: ClassVar[str] = "Other"
    #: the error this config raises (ConfigError or a domain subclass of it)
    ERROR: ClassVar[type[ConfigError]] = ConfigError
    _OPTIONS: ClassVar[dict[type, tuple[Option, ...]]] = {}

    # ------------------------------------------------------------------ declaration

    @classmethod
    def options(cls) -> tuple[Option, ...]:
        """This config's own options (nested configs appear as one ``options`` entry)."""
        got = Options._OPTIONS.get(cls)
        if got is not None:
            return got
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            meta = f.metadata.get("ttft.option")
            if meta is None:
                raise TypeError(f"{cls.__name__}.{f.name} is not declared with option()")
            kind, optional, nested, item = _kind_of(hints[f.name])
            factory: Any = f.default_factory
            default = f.default if f.default is not dataclasses.MISSING else factory()
            flag = meta["flag"]
            if flag is True:
                flag = "--" + f.name.replace("_", "-")
            elif flag is False or kind == "options":
                flag = None
            out.append(
                Option(
                    name=f.name,
                    path=f.name,
                    kind=kind,
                    optional=optional,
                    default=default,
                    help=meta["help"],
                    choices=meta["choices"],
                    suggestions=meta["suggestions"],
                    lo=meta["lo"],
                    hi=meta["hi"],
                    lo_open=meta["lo_open"],
                    min_len=meta["min_len"],
                    flag=flag,
                    group=meta["group"] or cls.GROUP,
                    widget=meta["widget"],
                    parse=meta["parse"],
                    nested=nested,
                    item=item,
                    repeat_into=meta["repeat_into"],
                )
            )
        Options._OPTIONS[cls] = tuple(out)
        return Options._OPTIONS[cls]

    # ------------------------------------------------------------------ validation

    def validate(self: T) -> T:
        """Return self, or raise ConfigError naming the first bad option (dotted path) and its value."""
        self._validate("")
        return self

    def _validate(self, prefix: str) -> None:
        err = type(self).ERROR
        for o in type(self).options():
            v = getattr(self, o.name)
            path = prefix + o.name
            if o.kind == "options":
                if not isinstance(v, Options) or not isinstance(v, o.nested or Options):
                    title = o.nested.TITLE if o.nested else "options"
                    raise err(f"{path}: must be a JSON object of {title} options, got {_show(v)}")
                v._validate(path + ".")
            else:
                msg = check_value(o, v)
                if msg:
                    raise err(f"{path}: {msg}, got {_show(v)}")
        try:
            self.check()
        except ConfigError as e:
            if prefix:
                raise type(e)(f"{prefix}{e}") from None
            if not isinstance(e, err):
                raise err(str(e)) from None
            raise

    def check(self) -> None:
        """Rules between options (raise ConfigError naming the option); subclasses override."""

    def bad(self, name: str, msg: str) -> ConfigError:
        """The error for option ``name`` of this config: ``name: msg, got <value>``."""
        return type(self).ERROR(f"{name}: {msg}, got {_show(getattr(self, name))}")

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for o in type(self).options():
            v = getattr(self, o.name)
            out[o.name] = v.to_json() if isinstance(v, Options) else list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_json(cls: type[T], d: Any, prefix: str = "") -> T:
        """A validated config from JSON; unknown keys and wrong types are refused with the option's path."""
        if not isinstance(d, dict):
            where = prefix.rstrip(".") or cls.TITLE
            raise cls.ERROR(f"{where}: must be a JSON object, got {_show(d)}")
        known = {o.name: o for o in cls.options()}
        extra = [k for k in d if k not in known]
        if extra:
            names = ", ".join(prefix + str(k) for k in extra)
            raise cls.ERROR(f"unknown {cls.TITLE} option(s): {names} (known: {', '.join(known)})")
        kw: dict[str, Any] = {}
        for k, v in d.items():
            o = known[k]
            if o.kind == "options":
                kw[k] = o.nested.from_json(v, prefix + k + ".")  # type: ignore[union-attr]
            elif o.kind == "list" and isinstance(v, list):
                kw[k] = tuple(float(x) if o.item == "float" and type(x) is int else x for x in v)
            elif o.kind == "float" and type(v) is int:
                kw[k] = float(v)
            else:
                kw[k] = v
        obj = cls(**kw)
        obj._validate(prefix)
        return obj

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _show(v: Any) -> str:
    text = repr(list(v) if isinstance(v, tuple) else v)
    return text if len(text) <= 80 else text[:77] + "..."


def check_value(o: Option, v: Any) -> str | None:
    """Why ``v`` is not a valid value of ``o`` (None when it is)."""
    if v is None:
        return None if o.optional else f"must be {_expected(o)}, not empty"
    if o.kind == "bool":
        return None if type(v) is bool else "must be true or false"
    if o.kind == "int":
        if type(v) is not int:
            return f"must be {_int_words(o)}"
        if abs(v) > INT_LIMIT:
            return f"must be an integer of at most {INT_LIMIT}"
        return _check_bounds(o, v) or _check_choice(o, v)
    if o.kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"must be {_float_words(o)}"
        if not math.isfinite(v):
            return "must be a finite number"
        return _check_bounds(o, v)
    if o.kind == "str":
        if not isinstance(v, str):
            return "must be text"
        if any(ord(c) < 32 for c in v):
            return "must not contain control characters (newlines, tabs, ...)"
        return _check_choice(o, v)
    if o.kind == "list" and o.item == "float":
        if not isinstance(v, tuple) or not all(type(x) is float and math.isfinite(x) for x in v):
            return "must be a list of numbers"
        why = next((w for x in v if (w := _check_bounds(o, x))), None)
        return f"{why} (each value)" if why else None
    if o.kind == "list":
        if not isinstance(v, tuple) or not all(isinstance(x, str) for x in v):
            return "must be a list of text values"
        if len(v) < o.min_len:
            return "must be a non-empty list" if o.min_len == 1 else f"must have at least {o.min_len} values"
        if o.choices is not None:
            bad = [x for x in v if x not in o.choices]
            if bad:
                what = o.name[:-1] if o.name.endswith("s") else o.name
                return f"unknown {what}(s) {', '.join(map(repr, bad))}; choose from {', '.join(map(str, o.choices))}"
        return None
    return None


def _expected(o: Option) -> str:
    return {"bool": "true or false", "int": "an integer", "float": "a number", "str": "text", "list": "a list"}.get(
        o.kind, o.kind
    )


def _int_words(o: Option) -> str:
    b = o.bounds_text()
    return b if b.startswith(("a ", "an ")) else f"an integer {b}".rstrip()


def _float_words(o: Option) -> str:
    b = o.bounds_text()
    return b if b.startswith(("a ", "an ")) else f"a number {b}".rstrip()


def _check_bounds(o: Option, v: float) -> str | None:
    """The bound ``v`` violates, in words ("must be a positive integer", "must be at most 10"), or None."""
    if o.lo is not None and (v <= o.lo if o.lo_open else v < o.lo):
        low = dataclasses.replace(o, hi=None)
        return f"must be {_int_words(low) if o.kind == 'int' else _float_words(low)}"
    if o.hi is not None and v > o.hi:
        return f"must be at most {_num(o.hi)}"
    return None


def _check_choice(o: Option, v: Any) -> str | None:
    if o.choices is not None and v not in o.choices:
        return f"must be one of {', '.join(map(str, o.choices))}"
    return None


# --------------------------------------------------------------------------- flattening (forms, flags, commands)


def flat_options(cls: type[Options], prefix: str = "") -> list[Option]:
    """Every leaf option of a config with its dotted path (``model.lora_r``), in declaration order."""
    out: list[Option] = []
    for o in cls.options():
        if o.kind == "options":
            out.extend(flat_options(o.nested, prefix + o.name + "."))  # type: ignore[arg-type]
        else:
            out.append(dataclasses.replace(o, path=prefix + o.name))
    return out


def get_path(d: dict, path: str) -> Any:
    for part in path.split("."):
        d = d[part]
    return d


def set_path(d: dict, path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest:
        set_path(d.setdefault(head, {}), rest, value)
    else:
        d[head] = value


# --------------------------------------------------------------------------- command line


def parse_list(text: str) -> tuple[str, ...]:
    """A comma-separated command-line list (blanks around items ignored)."""
    return tuple(t.strip() for t in text.replace("\n", ",").split(",") if t.strip())


def _parser_for(o: Option) -> Callable[[str], Any]:
    def conv(text: str) -> Any:
        if o.optional and text.strip().lower() == NONE_WORD:
            return None
        if o.parse is not None:
            return o.parse(text)
        if o.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if o.kind == "float":
            try:
                v = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
            if not math.isfinite(v):
                raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
            return v
        if o.kind == "list":
            items = parse_list(text)
            if not items:
                raise argparse.ArgumentTypeError("no value given (leave the option out for its default)")
            try:
                return tuple(float(x) for x in items) if o.item == "float" else items
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
        return text

    conv.__name__ = o.kind  # argparse names the type in its messages
    return conv


def add_arguments(
    parser: argparse.ArgumentParser | Any, cls: type[Options], exclude: Sequence[str] = (), title: str | None = None
) -> None:
    """Add a flag for every option of ``cls`` that has one. Flags default to *absent* (argparse.SUPPRESS) so that
    only the flags given are applied over a base config (:func:`apply_args`); ``--help`` shows the real default."""
    groups: dict[str, Any] = {}
    for o in flat_options(cls):
        if o.flag is None or o.path in exclude:
            continue
        g = groups.get(o.group)
        if g is None:
            g = groups[o.group] = parser.add_argument_group(o.group if title is None else f"{title}: {o.group}")
        text = o.help.replace("%", "%%")
        extra = []
        if o.kind in ("int", "float") and o.bounds_text():
            extra.append(o.bounds_text())
        if o.optional and o.default is not None:
            extra.append(f"'{NONE_WORD}' for none")
        text += (f" ({'; '.join(extra)})" if extra else "") + f" [default: {o.describe_default()}]".replace("%", "%%")
        if o.kind == "bool":
            g.add_argument(
                o.flag, dest=o.dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text
            )
            continue
        kw: dict[str, Any] = dict(dest=o.dest, default=argparse.SUPPRESS, help=text, type=_parser_for(o))
        if o.repeat_into is not None:
            kw.update(action=_FirstThenMore, const=_sibling(o, o.repeat_into).replace(".", "__"))
            kw["help"] = text.replace(" [default:", f" (repeat the flag for more: {o.repeat_into}) [default:", 1)
        if o.kind == "list":
            kw["metavar"] = "A,B,..."
            if o.choices is not None:
                kw["help"] = text.replace(" [default:", f" (from {', '.join(map(str, o.choices))}) [default:", 1)
        elif o.choices is not None:
            kw["metavar"] = "{" + ",".join(map(str, o.choices)) + "}"
        else:
            kw["metavar"] = {"int": "N", "float": "X"}.get(o.kind, o.name.upper())
        g.add_argument(o.flag, **kw)


def _sibling(o: Option, name: str) -> str:  # the dotted path of option ``name`` beside ``o``
    return o.path.rpartition(".")[0] + "." + name if "." in o.path else name


class _FirstThenMore(argparse.Action):
    """A repeatable flag: the first value is the option, the others its ``repeat_into`` list (replaced as a whole)."""

    def __call__(self, parser: Any, ns: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        if getattr(ns, self.dest, None) is None or not hasattr(ns, self.const):
            setattr(ns, self.dest, values)
            setattr(ns, self.const, [])
        else:
            getattr(ns, self.const).append(values)


def _repeat_targets(cls: type[Options]) -> set[str]:
    return {_sibling(o, o.repeat_into) for o in flat_options(cls) if o.repeat_into and o.flag is not None}


def apply_args(cls: type[T], args: argparse.Namespace, base: dict | None = None) -> T:
    """A validated config: ``base`` (a config JSON, e.g. a file or a run's config) with the given flags applied."""
    d = cls().to_json()
    if base is not None:
        if not isinstance(base, dict):
            raise ConfigError(f"{cls.TITLE}: must be a JSON object, got {_show(base)}")
        _merge(d, base)
    targets = _repeat_targets(cls)
    for o in flat_options(cls):
        if (o.flag is not None or o.path in targets) and hasattr(args, o.dest):
            v = getattr(args, o.dest)
            set_path(d, o.path, list(v) if isinstance(v, tuple) else v)
    return cls.from_json(d)


def _merge(into: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def _flag_tokens(o: Option, v: Any) -> list[str]:
    assert o.flag is not None
    if o.kind == "bool":
        return [o.flag if v else "--no-" + o.flag[2:]]
    text = NONE_WORD if v is None else repr(float(v)) if o.kind == "float" else str(v)
    if o.kind == "list":
        text = ",".join(repr(float(x)) if o.item == "float" else x for x in v)
    return [f"{o.flag}={text}"] if text.startswith("-") else [o.flag, text]


def argv_of(cfg: Options, always: Sequence[str] = ()) -> list[str] | None:
    """The flags that give exactly ``cfg`` (options at their default left out, except the paths in ``always``), or
    None when an option that differs from its default has no flag or cannot be written as one (then pass the config
    as a file)."""
    cls = type(cfg)
    d, dflt = cfg.to_json(), cls().to_json()
    argv: list[str] = []
    targets = _repeat_targets(cls)
    for o in flat_options(cls):
        v, dv = get_path(d, o.path), get_path(dflt, o.path)
        if o.path in targets:
            continue  # written with the flag it repeats
        more = get_path(d, _sibling(o, o.repeat_into)) if o.repeat_into and o.flag is not None else []
        if more:  # (validated: non-empty text; a leading '-' is written --flag=-x)
            argv.extend(tok for x in [v, *more] for tok in _flag_tokens(o, x))
            continue
        if v == dv and o.path not in always:
            continue
        if o.flag is None:
            if v == dv:
                continue
            return None
        val = tuple(v) if isinstance(v, list) else v
        if o.kind == "list" and not val:
            return None  # an empty list has no command-line spelling
        if o.kind == "str" and (val == "" or (o.optional and isinstance(val, str) and val.lower() == NONE_WORD)):
            return None
        argv.extend(_flag_tokens(o, val))
    return argv


def iter_paths(d: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict):
            yield from iter_paths(v, prefix + k + ".")
        else:
            yield prefix + k, v

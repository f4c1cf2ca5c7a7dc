"""Attention read from the language model itself, for a (context, item) pair fed as one sequence.

Computing is kept apart from drawing (``ctxrec.viz`` draws): everything here returns arrays and token
labels. The model is loaded a second time with eager attention, because fused kernels (SDPA) do not
return their weights.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..text.encoders import DEFAULT_ENCODER, ModelLoadError, default_encoder_path, pick_device

__all__ = ["AttentionModel", "PairAttention", "StepByStep", "head_average", "rollout",
           "segment_boxes"]


@dataclass
class PairAttention:
    """All attention weights of one forward pass.

    Attributes:
        tokens: the tokenizer's tokens, special ones included, length T.
        attentions: (L, H, T, T); row i holds where token i looks, and each row sums to 1.
        segments: (T,) 0 for special tokens, 1 for the context text, 2 for the item text.
        causal: the model is a causal LM (rows attend only to earlier tokens).
    """

    tokens: list[str]
    attentions: np.ndarray
    segments: np.ndarray
    causal: bool = False

    @property
    def n_layers(self) -> int:
        return self.attentions.shape[0]

    @property
    def n_heads(self) -> int:
        return self.attentions.shape[1]

    def keep(self, hide_special: bool) -> np.ndarray:
        """Indices of the tokens to show."""
        return np.flatnonzero(self.segments > 0) if hide_special else np.arange(len(self.tokens))

    def select(self, view: str, layer: int = 0, head: int = 0, hide_special: bool = False,
               focus: str = "all") -> tuple[np.ndarray, list[str], list[str], list[tuple]]:
        """One matrix to show.

        Args:
            view: ``head`` (one layer and head), ``average`` (one layer, mean over heads) or
                ``rollout`` (all layers).
            hide_special: drop [CLS]/[SEP]-like rows and columns (rows are not renormalised, so
                the numbers stay the model's).
            focus: ``all``, ``context→item`` (context rows, item columns) or ``item→context``.

        Returns:
            the matrix, its row tokens, its column tokens, and the boxes that outline the
            context→item and item→context blocks (only for ``all``).
        """
        if view == "head":
            matrix = self.attentions[layer, head]
        elif view == "average":
            matrix = self.attentions[layer].mean(axis=0)
        elif view == "rollout":
            matrix = rollout(self.attentions)
        else:
            raise ValueError(f"unknown view '{view}': use head, average or rollout")
        if focus == "all":
            keep = self.keep(hide_special)
            tokens = [self.tokens[i] for i in keep]
            return matrix[np.ix_(keep, keep)], tokens, tokens, segment_boxes(self.segments[keep])
        rows, cols = {"context→item": (1, 2), "item→context": (2, 1)}[focus]
        row_idx, col_idx = np.flatnonzero(self.segments == rows), \
            np.flatnonzero(self.segments == cols)
        return (matrix[np.ix_(row_idx, col_idx)], [self.tokens[i] for i in row_idx],
                [self.tokens[i] for i in col_idx], [])

    def block(self, matrix: np.ndarray, rows: int, cols: int) -> np.ndarray:
        """The sub-matrix from segment ``rows`` to segment ``cols`` (e.g. 1 → 2: context words
        looking at item words)."""
        return matrix[np.ix_(self.segments == rows, self.segments == cols)]


@dataclass
class StepByStep:
    """softmax(QKᵀ/√d)V for one layer and head, recomputed from the model's own projections.

    Attributes:
        q, k, v: (T, d) per-head query, key and value vectors.
        scores: (T, T) QKᵀ.
        scaled: (T, T) QKᵀ/√d plus the attention mask (−inf or a large negative where masked).
        weights: (T, T) softmax of ``scaled`` by rows.
        output: (T, d) weights @ V.
        model_weights: (T, T) what the model itself reported (``output_attentions``).
    """

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    scores: np.ndarray
    scaled: np.ndarray
    weights: np.ndarray
    output: np.ndarray
    model_weights: np.ndarray

    @property
    def max_difference(self) -> float:
        return float(np.abs(self.weights - self.model_weights).max())


def segment_boxes(segments: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Outlines of the context→item and item→context blocks, as (first col, last col, first row,
    last row) for :func:`ctxrec.viz.heatmap_figure`."""
    spans = {}
    for part in (1, 2):
        where = np.flatnonzero(segments == part)
        if where.size:
            spans[part] = (int(where[0]), int(where[-1]))
    if len(spans) < 2:
        return []
    (c0, c1), (i0, i1) = spans[1], spans[2]
    return [(i0, i1, c0, c1), (c0, c1, i0, i1)]


def head_average(attentions: np.ndarray) -> np.ndarray:
    """(L, H, T, T) → (L, T, T), the mean over heads."""
    return attentions.mean(axis=1)


def rollout(attentions: np.ndarray, residual: bool = True) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) across all layers.

    Each layer's head-averaged matrix A is mixed with the identity for the residual connection,
    Â = ½A + ½I, rows renormalised, and the layers multiplied: R = Â_L · … · Â_1.

    Args:
        attentions: (L, H, T, T).
        residual: add the identity (the paper's variant); ``False`` multiplies raw averages.

    Returns:
        (T, T) with rows summing to 1: how much each output position draws on each input token.
    """
    averaged = head_average(attentions).astype(np.float64)
    eye = np.eye(averaged.shape[-1])
    result = eye
    for layer in averaged:
        mixed = 0.5 * layer + 0.5 * eye if residual else layer
        mixed = mixed / mixed.sum(axis=-1, keepdims=True)
        result = mixed @ result
    return result


class AttentionModel:
    """A Hugging Face model loaded with eager attention, for reading its weights.

    Args:
        name: ``DEFAULT_ENCODER``, a Hugging Face id or a local folder; encoders and causal LMs.
        device: picked automatically when ``None``.
        trust_remote_code: allow the model's own code (off unless the person turns it on).

    One instance serves many threads at once (the app's sessions share it): tokenizing takes a
    lock (a fast tokenizer cannot change its truncation settings while another thread encodes),
    and the hooks of :meth:`step_by_step` record only the forward pass of the thread that set them.
    """

    def __init__(self, name: str = DEFAULT_ENCODER, device: str | None = None,
                 trust_remote_code: bool = False):
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

        self.name = name
        self.device = pick_device(device)
        source = str(default_encoder_path()) if name == DEFAULT_ENCODER else name
        try:
            config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
            self.causal = bool(getattr(config, "is_decoder", False)) or any(
                a.endswith("ForCausalLM") for a in (config.architectures or []))
            loader = AutoModelForCausalLM if self.causal else AutoModel
            self.model = loader.from_pretrained(source, attn_implementation="eager",
                                                trust_remote_code=trust_remote_code)
            self.tokenizer = AutoTokenizer.from_pretrained(source,
                                                           trust_remote_code=trust_remote_code)
        except Exception as err:  # any loader failure becomes one readable message
            raise ModelLoadError(f"Could not load '{name}' for attention: {err}") from err
        self.model.to(self.device).eval()
        self._tokenizing = threading.Lock()

    def _encode_pair(self, first: str, second: str, max_tokens: int) -> dict:
        tok = self.tokenizer
        if self.causal:
            a = tok(first, add_special_tokens=False, truncation=True, max_length=max_tokens)
            b = tok(second, add_special_tokens=False, truncation=True, max_length=max_tokens)
            prefix = [tok.bos_token_id] if tok.bos_token_id is not None else []
            return {"input_ids": prefix + a["input_ids"] + b["input_ids"],
                    "segments": [0] * len(prefix) + [1] * len(a["input_ids"])
                    + [2] * len(b["input_ids"])}
        encoded = tok(first, second, truncation="longest_first", max_length=2 * max_tokens + 3)
        # sequence_ids: None for special tokens, 0 for the first text, 1 for the second
        segments = [0 if s is None else s + 1 for s in encoded.sequence_ids()]
        inputs = {k: encoded[k] for k in ("input_ids", "token_type_ids") if k in encoded}
        return {**inputs, "segments": segments}

    @torch.inference_mode()
    def attend(self, context_text: str, item_text: str, max_tokens: int = 128) -> PairAttention:
        """Attention of every layer and head over ``context_text`` followed by ``item_text``.

        Args:
            max_tokens: each text is cut to this many tokens before the pair is built.
        """
        with self._tokenizing:
            inputs = self._encode_pair(context_text, item_text, max_tokens)
        segments = np.asarray(inputs.pop("segments"))
        tensors = {k: torch.tensor([v], device=self.device) for k, v in inputs.items()}
        out = self.model(**tensors, output_attentions=True)
        attentions = torch.stack(out.attentions)[:, 0].float().cpu().numpy()  # (L, H, T, T)
        tokens = self.tokenizer.convert_ids_to_tokens(inputs["input_ids"])
        return PairAttention(tokens=tokens, attentions=attentions, segments=segments,
                             causal=self.causal)

    @torch.inference_mode()
    def step_by_step(self, text: str, layer: int, head: int, max_tokens: int = 48
                     ) -> tuple[list[str], StepByStep]:
        """Recompute one head's attention from the query/key/value projections of ``layer``.

        Supports models whose self-attention has ``query``/``key``/``value`` (BERT family) or
        ``q_proj``/``k_proj``/``v_proj`` linear layers; ``StepByStep.max_difference`` says how
        closely the recomputation matches the model (rotary or relative position terms inside
        attention make it differ, and the page says so).
        """
        projections = self._projections(layer)
        captured: dict[str, torch.Tensor] = {}
        me = threading.get_ident()

        def keep(name: str, output: torch.Tensor) -> None:
            # the hooks sit on modules every session's forward passes run through
            if threading.get_ident() == me:
                captured[name] = output

        hooks = [module.register_forward_hook(
            lambda _m, _i, output, name=name: keep(name, output))
            for name, module in projections.items()]
        try:
            with self._tokenizing:
                encoded = self.tokenizer(text, truncation=True, max_length=max_tokens,
                                         return_tensors="pt").to(self.device)
            out = self.model(**encoded, output_attentions=True)
        finally:
            for hook in hooks:
                hook.remove()
        n_heads = out.attentions[layer].shape[1]
        size = captured["q"].shape[-1] // n_heads
        n_kv = captured["k"].shape[-1] // size  # grouped-query attention shares key/value heads
        kv_head = head // (n_heads // n_kv)

        def split(tensor: torch.Tensor, index: int) -> np.ndarray:
            return tensor[0].view(tensor.shape[1], -1, size)[:, index].float().cpu().numpy()

        q, k, v = split(captured["q"], head), split(captured["k"], kv_head), \
            split(captured["v"], kv_head)
        scores = q @ k.T  # (T, T)
        scaled = scores / np.sqrt(size)
        if self.causal:
            scaled = np.where(np.tril(np.ones_like(scaled, dtype=bool)), scaled, -np.inf)
        weights = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        tokens = self.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
        model_weights = out.attentions[layer][0, head].float().cpu().numpy()
        return tokens, StepByStep(q=q, k=k, v=v, scores=scores, scaled=scaled, weights=weights,
                                  output=weights @ v, model_weights=model_weights)

    def _projections(self, layer: int) -> dict[str, torch.nn.Module]:
        prefix = None
        for name, _ in self.model.named_modules():
            parts = name.split(".")
            if str(layer) in parts and parts[-1] in ("query", "q_proj"):
                prefix = name.rsplit(".", 1)[0]
                names = ("query", "key", "value") if parts[-1] == "query" else \
                    ("q_proj", "k_proj", "v_proj")
                break
        if prefix is None:
            raise ValueError(f"{self.name}: no query/key/value projections found in layer "
                             f"{layer}; the step-by-step view needs BERT- or Llama-style "
                             "attention modules.")
        modules = dict(self.model.named_modules())
        return {short: modules[f"{prefix}.{full}"] for short, full in zip("qkv", names)}


import numpy as np
import pytest
import torch

from ctxrec.inspect.attention import AttentionModel, PairAttention, rollout, segment_boxes


@pytest.fixture(scope="module")
def model():
    return AttentionModel()


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory, encoder):
    """A two-layer Llama built from a config: the causal path without a download."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(vocab_size=encoder.tokenizer.vocab_size, hidden_size=32,
                         intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    return AttentionModel(str(folder))


def test_rows_sum_to_one_and_tokens_are_the_tokenizers(model):
    context, item = "Saturday evening at home with the kids", "A slapstick family film caper."
    pair = model.attend(context, item)
    assert pair.attentions.shape == (6, 12, len(pair.tokens), len(pair.tokens))
    np.testing.assert_allclose(pair.attentions.sum(axis=-1), 1.0, atol=1e-5)
    expected = model.tokenizer.convert_ids_to_tokens(model.tokenizer(context, item)["input_ids"])
    assert pair.tokens == expected
    assert pair.tokens[0] == "[CLS]" and pair.segments[0] == 0
    context_tokens = [t for t, s in zip(pair.tokens, pair.segments) if s == 1]
    item_tokens = [t for t, s in zip(pair.tokens, pair.segments) if s == 2]
    assert context_tokens == model.tokenizer.tokenize(context)
    assert item_tokens == model.tokenizer.tokenize(item)


def test_long_texts_are_cut_per_text(model):
    pair = model.attend("word " * 400, "thing " * 400, max_tokens=128)
    assert len(pair.tokens) == 259 and (pair.segments == 1).sum() == 128


def test_rollout_matches_the_formula_on_a_hand_made_tensor():
    a1 = np.array([[0.5, 0.5], [0.2, 0.8]])
    a2 = np.array([[1.0, 0.0], [0.6, 0.4]])
    att = np.stack([np.stack([a1, a1]), np.stack([a2, a2])])  # (L=2, H=2, 2, 2)
    eye = np.eye(2)
    r1 = 0.5 * a1 + 0.5 * eye
    r2 = 0.5 * a2 + 0.5 * eye
    np.testing.assert_allclose(rollout(att), r2 @ r1)
    np.testing.assert_allclose(rollout(att, residual=False), a2 @ a1)
    np.testing.assert_allclose(rollout(att).sum(axis=1), 1.0)


def test_views_and_blocks():
    segments = np.array([0, 1, 1, 0, 2, 2, 2, 0])
    rng = np.random.default_rng(0)
    raw = rng.random((2, 3, 8, 8))
    pair = PairAttention([f"t{i}" for i in range(8)], raw / raw.sum(-1, keepdims=True), segments)
    matrix, rows, cols, boxes = pair.select("head", 1, 2)
    np.testing.assert_array_equal(matrix, pair.attentions[1, 2])
    assert boxes == [(4, 6, 1, 2), (1, 2, 4, 6)]
    hidden, rows, cols, boxes = pair.select("average", 0, hide_special=True)
    assert rows == ["t1", "t2", "t4", "t5", "t6"] and hidden.shape == (5, 5)
    np.testing.assert_allclose(hidden, pair.attentions[0].mean(0)[np.ix_([1, 2, 4, 5, 6],
                                                                           [1, 2, 4, 5, 6])])
    block, rows, cols, boxes = pair.select("rollout", focus="context→item")
    assert rows == ["t1", "t2"] and cols == ["t4", "t5", "t6"] and boxes == []
    np.testing.assert_allclose(block, rollout(pair.attentions)[np.ix_([1, 2], [4, 5, 6])])
    assert segment_boxes(np.array([0, 1, 1, 0])) == []


def test_step_by_step_equals_the_models_attention(model):
    for layer, head in ((0, 0), (3, 7), (5, 11)):
        # the model's own per-head output softmax(QKᵀ/√d)V, read inside its attention module
        module = dict(model.model.named_modules())[f"encoder.layer.{layer}.attention.self"]
        seen = []
        hook = module.register_forward_hook(lambda _m, _i, out: seen.append(out[0][0]))
        try:
            tokens, step = model.step_by_step("a funny film to watch with the kids", layer, head)
        finally:
            hook.remove()
        assert tokens[0] == "[CLS]" and step.q.shape == (len(tokens), 32)
        assert step.max_difference < 1e-5
        own = seen[0].reshape(len(tokens), 12, 32)[:, head].numpy()
        np.testing.assert_allclose(step.output, own, atol=1e-5)


def test_causal_models_attend_only_backwards(tiny_causal):
    pair = tiny_causal.attend("breakfast before work", "a quick omelette")
    assert pair.causal and pair.attentions.shape[:2] == (2, 4)
    upper = np.triu(np.ones(pair.attentions.shape[-2:], dtype=bool), k=1)
    assert np.all(pair.attentions[..., upper] == 0)
    np.testing.assert_allclose(pair.attentions.sum(-1), 1.0, atol=1e-5)
    _, step = tiny_causal.step_by_step("breakfast before work", 1, 3)
    # masked like the model: zero exactly where its weights are (rotary is not shown, so the
    # values themselves differ)
    np.testing.assert_array_equal(step.weights == 0, step.model_weights == 0)
    assert np.all(step.weights[np.tril_indices(len(step.weights))] > 0)

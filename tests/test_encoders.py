import numpy as np
import pytest
import torch

from ctxrec import DEFAULT_ENCODER, ModelLoadError, TextEncoder, load_encoder, pick_device


def test_packaged_model_loads_and_encodes_with_the_network_off(no_network):
    encoder = TextEncoder(DEFAULT_ENCODER)
    vectors = encoder.encode(["a quiet breakfast", "a loud late-night concert"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    close = encoder.encode_one("a calm morning meal")
    assert close @ vectors[0] > close @ vectors[1]


def test_batched_encoding_equals_one_by_one(encoder):
    texts = ["short", "a much longer sentence about a rainy afternoon in a museum", "mid length",
             "x " * 40, "another"]
    seen = []
    batched = encoder.encode(texts, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    single = np.stack([encoder.encode_one(t) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_encode_is_sentence_transformers_encode_in_input_order(encoder):
    texts = ["ok", "a long sentence about a slow walk through a rainy museum, " * 12, "",
             "café ☕ 東京", "word " * 400, "a mid-length line about jazz on a Sunday evening"]
    seen = []
    ours = encoder.encode(texts, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    theirs = encoder.model.encode(texts, normalize_embeddings=True)  # one batch, its own order
    assert ours.shape == (len(texts), encoder.dim) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-5 if encoder.precision == "float32" else 2e-3)
    assert seen[-1] == (len(texts), len(texts)) and {t for _, t in seen} == {len(texts)}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_truncation_is_detected_and_located(encoder):
    short = encoder.truncation("a short intent")
    assert not short.truncated and short.kept_chars == len("a short intent")
    long_text = "I would like something relaxing to watch tonight. " * 400  # 20,400 characters
    cut = encoder.truncation(long_text)
    assert cut.truncated and cut.n_tokens > 2000 and cut.max_tokens == 256
    assert 600 < cut.kept_chars < 2000
    kept_tokens = len(encoder.tokenizer(long_text[:cut.kept_chars])["input_ids"])
    assert kept_tokens <= cut.max_tokens


def _machine(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_device_is_picked_from_what_exists(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=True)
    assert pick_device() == "cuda" and pick_device("cuda") == "cuda"
    assert pick_device("mps") == "mps" and pick_device("cpu") == "cpu"
    _machine(monkeypatch, cuda=False, mps=True)
    assert pick_device() == "mps"
    _machine(monkeypatch, cuda=False, mps=False)  # a preference that is not there falls back
    assert pick_device() == pick_device("cuda") == pick_device("mps") == "cpu"


def test_the_model_is_on_the_device_it_reports(encoder):
    assert encoder.device == pick_device()
    assert {p.device.type for p in encoder.model.parameters()} == {encoder.device}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_it_loads_on_the_cpu():
    encoder = TextEncoder(DEFAULT_ENCODER, device="cuda")
    assert encoder.device == "cpu" and encoder.precision == "float32"
    assert {p.device.type for p in encoder.model.parameters()} == {"cpu"}
    assert encoder.encode_one("a quiet breakfast").shape == (384,)


def test_a_local_folder_model_loads(tmp_path, encoder):
    """Any Hugging Face folder works: a tiny BERT built from a config, pooled by mean."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=encoder.tokenizer.vocab_size, hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    tiny = load_encoder(str(tmp_path))
    texts = ["one text", "another, longer text"]
    vectors = tiny.encode(texts)
    assert tiny.dim == 32 and vectors.shape == (2, 32)
    bert = BertModel.from_pretrained(tmp_path).eval()
    for text, vector in zip(texts, vectors):  # the mean of the last layer over every token
        with torch.no_grad():
            hidden = bert(**encoder.tokenizer(text, return_tensors="pt")).last_hidden_state[0]
        mean = hidden.mean(0).numpy()
        np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), atol=1e-5)


@pytest.mark.parametrize("name, fragment", [("", "No model given"),
                                            ("/no/such/folder/model", "Could not load"),
                                            ("no-such-org/no-such-model-xyz", "huggingface.co cannot be reached")])
def test_models_that_cannot_load_say_why(no_network, name, fragment):
    with pytest.raises(ModelLoadError, match=fragment):
        load_encoder(name)


def test_a_folder_saved_in_half_precision_reads_in_float32_off_the_gpu(tmp_path, encoder):
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=encoder.tokenizer.vocab_size, hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).half().save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    tiny = load_encoder(str(tmp_path), device="cpu")
    assert tiny.precision == "float32"
    assert {p.dtype for p in tiny.model.parameters()} == {torch.float32}
    assert tiny.encode(["one text"]).dtype == np.float32

"""The sequence model: shapes, causality, learning, checkpoints and long-history variants."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ctxrec import Catalog
from ctxrec.evaluation.split import leave_last_out
from ctxrec.rank.seen import SeenItems
from ctxrec.sequence.config import SequenceConfig, TrainConfig
from ctxrec.sequence.model import SASRec
from ctxrec.sequence.train import TrainedModel, load_checkpoint, train_sequence_model
from ctxrec.sequence.windows import prediction_input, training_windows


def tiny(memory: str = "truncate", item_repr: str = "id", n_items: int = 30, max_len: int = 6,
         seed: int = 0) -> SASRec:
    torch.manual_seed(seed)
    config = SequenceConfig(n_items=n_items, max_len=max_len, hidden=16, layers=2, heads=2,
                            dropout=0.0, item_repr=item_repr,
                            text_dim=8 if item_repr != "id" else 0, memory=memory,
                            n_summaries=4)
    text = torch.randn(n_items, 8) if item_repr != "id" else None
    return SASRec(config, text).eval()


def cyclic_log(n_users: int = 40, n_items: int = 12, length: int = 20) -> tuple[Catalog,
                                                                                pd.DataFrame]:
    """Each user walks the items in a fixed cycle from a random start: the next item is fully
    predictable from the last one."""
    rng = np.random.default_rng(0)
    catalog = Catalog(items=pd.DataFrame({"id": [f"i{j}" for j in range(n_items)],
                                          "title": [f"Item {j}" for j in range(n_items)]}))
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        rows += [(f"u{u}", f"i{(start + t) % n_items}", 4.0, 1000 + t) for t in range(length)]
    return catalog, pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


@pytest.mark.parametrize("item_repr", ["id", "text", "hybrid"])
def test_scores_have_one_column_per_item(item_repr):
    model = tiny(item_repr=item_repr)
    batch = prediction_input([np.array([1, 2, 3]), np.array([4])], max_len=6)
    assert model.next_item_logits(batch).shape == (2, 30)
    assert torch.count_nonzero(model.item_table()[0]) == 0  # padding row stays zero


def test_no_position_attends_to_the_future():
    model = tiny()
    items = torch.tensor([[3, 5, 7, 9, 11, 13]])
    from ctxrec.sequence.model import SequenceInput

    hidden, weights = model(SequenceInput(items), keep_weights=True)
    for w in weights:
        upper = torch.triu(w[0], diagonal=1)
        assert torch.all(upper == 0)
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
    changed = items.clone()
    changed[0, 4:] = torch.tensor([2, 4])  # change only the last two items
    hidden2, _ = model(SequenceInput(changed))
    torch.testing.assert_close(hidden[0, :4], hidden2[0, :4])
    assert not torch.allclose(hidden[0, 4:], hidden2[0, 4:])


def test_left_padding_does_not_change_the_prediction():
    model = tiny()
    short = prediction_input([np.array([4, 8, 15])], max_len=3)
    padded = prediction_input([np.array([4, 8, 15])], max_len=6)
    torch.testing.assert_close(model.next_item_logits(short), model.next_item_logits(padded))


def cycle_task():
    """(catalog, split, config) for learning the cyclic log with a one-layer model."""
    catalog, log = cyclic_log()
    config = SequenceConfig(n_items=len(catalog), max_len=8, hidden=32, layers=1, heads=2,
                            dropout=0.0, item_repr="id")
    return catalog, leave_last_out(log, catalog), config


def test_loss_decreases_and_the_cycle_is_learned():
    catalog, split, config = cycle_task()
    trained = train_sequence_model(split, catalog, config,
                                   TrainConfig(epochs=30, batch_size=16, lr=5e-3, patience=30))
    losses = [e.train_loss for e in trained.history]
    assert losses[-1] < 0.5 * losses[0]
    assert trained.history[trained.best_epoch - 1].valid_hr == 1.0
    user = next(iter(split.histories))
    history = split.histories[user]
    assert trained.next_item_scores([history])[0].argmax() == split.valid[user].item


def test_checkpoint_round_trip_is_bit_identical(tmp_path):
    catalog, log = cyclic_log(n_users=10, length=8)
    split = leave_last_out(log, catalog)
    config = SequenceConfig(n_items=len(catalog), max_len=4, hidden=16, layers=1, heads=2,
                            item_repr="hybrid", text_dim=5)
    vectors = np.random.default_rng(1).normal(size=(len(catalog), 5)).astype(np.float32)
    trained = train_sequence_model(split, catalog, config, TrainConfig(epochs=2, batch_size=4),
                                   vectors, encoder="test-encoder")
    trained.save(tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt", device="cpu")
    original = trained.model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, original[name].cpu()), name
    assert loaded.config == trained.config and loaded.item_ids == trained.item_ids
    assert loaded.matches(catalog) and loaded.encoder == "test-encoder"
    assert [e.valid_ndcg for e in loaded.history] == [e.valid_ndcg for e in trained.history]
    histories = [split.histories[u] for u in split.histories]
    np.testing.assert_array_equal(loaded.next_item_scores(histories), trained.next_item_scores(histories))
    # a training setting this version does not know (written by another one) is not an error
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    meta["train"]["some_future_setting"] = 1
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(meta))
    assert load_checkpoint(tmp_path / "ckpt").train == trained.train


def test_damaged_checkpoints_are_refused_with_a_reason(tmp_path):
    with pytest.raises(ValueError, match="not a ctxrec checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match="damaged checkpoint"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("memory", ["xl", "hierarchical"])
def test_long_history_variants_equal_truncation_when_the_history_fits(memory):
    truncate, variant = tiny("truncate"), tiny(memory)
    variant.load_state_dict(truncate.state_dict())
    fits = [np.array([1, 2, 3, 4, 5]), np.array([7, 9])]
    torch.testing.assert_close(truncate.next_item_logits(prediction_input(fits, 6)),
                               variant.next_item_logits(prediction_input(fits, 6)))
    longer = [np.arange(1, 20)]  # 19 items, window 6: the variants now read what came before
    assert not torch.allclose(truncate.next_item_logits(prediction_input(longer, 6)),
                              variant.next_item_logits(prediction_input(longer, 6)))


def test_a_mixed_batch_equals_one_by_one():
    model = tiny("hierarchical")
    histories = [np.arange(1, 25), np.array([3, 4]), np.arange(5, 14)]
    together = model.next_item_logits(prediction_input(histories, 6, n_summaries=4))
    for row, history in enumerate(histories):
        alone = model.next_item_logits(prediction_input([history], 6, n_summaries=4))
        torch.testing.assert_close(together[row:row + 1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride, shuffled", [(None, False), (1, False), (3, False), (None, True),
                                              (3, True)])
def test_windows_cover_every_target_once(stride, shuffled):
    histories = [np.arange(10), np.arange(100, 103), np.array([7])]
    rng = np.random.default_rng(3) if shuffled else None
    windows = training_windows(histories, max_len=4, stride=stride, rng=rng)
    assert windows.n_targets == 9 + 2  # a one-item history teaches nothing
    targets = sorted(int(t) - 1 for row in windows.targets for t in row if t)
    assert targets == list(range(1, 10)) + [101, 102]
    for inputs, target in zip(windows.inputs, windows.targets):
        assert len(inputs) == len(target) <= 4
        kept = target > 0
        np.testing.assert_array_equal(inputs[1:][kept[:-1]], target[:-1][kept[:-1]])
    if stride == 1:  # all but the oldest window predict only after a full window of inputs
        last_only = [t.tolist() for t in windows.targets if len(t) == 4 and (t > 0).sum() == 1]
        assert len(last_only) == 5 and all(t[-1] > 0 for t in last_only)


def test_unknown_items_keep_their_text_in_the_hybrid_model():
    config = SequenceConfig(n_items=4, hidden=8, heads=2, item_repr="hybrid", text_dim=3)
    known = torch.tensor([True, True, False, True])
    model = SASRec(config, torch.randn(4, 3), known)
    table = model.item_table()
    text_only = model.text_proj(model.text_vectors)
    torch.testing.assert_close(table[3], text_only[3])  # item 2 (index 3) is unknown
    assert not torch.allclose(table[1], text_only[1])


def test_id_dropout_scores_some_known_items_by_their_text_in_training_only():
    config = SequenceConfig(n_items=400, hidden=8, heads=2, item_repr="hybrid", text_dim=3,
                            id_dropout=0.25)
    model = SASRec(config, torch.randn(400, 3))
    text_only = model.text_proj(model.text_vectors)
    torch.manual_seed(0)
    model.train()
    dropped = (model.item_table() - text_only).abs().sum(-1)[1:] == 0
    assert 0.15 < dropped.float().mean() < 0.35  # about a quarter, drawn anew for each batch
    torch.manual_seed(1)
    assert not torch.equal(dropped, (model.item_table() - text_only).abs().sum(-1)[1:] == 0)
    model.eval()
    assert ((model.item_table() - text_only).abs().sum(-1)[1:] > 0).all()  # none when scoring
    with pytest.raises(ValueError, match="id_dropout"):
        SequenceConfig(n_items=3, id_dropout=1.0)


def test_bad_configs_say_what_is_wrong():
    with pytest.raises(ValueError, match="item_repr"):
        SequenceConfig(n_items=3, item_repr="bag")
    with pytest.raises(ValueError, match="text vectors"):
        SASRec(SequenceConfig(n_items=3, item_repr="text"))
    with pytest.raises(ValueError, match="memory"):
        SequenceConfig(n_items=3, memory="forever")
    catalog, log = cyclic_log(n_users=3, length=3)
    split = leave_last_out(log, catalog)
    with pytest.raises(ValueError, match="nothing to train on"):
        train_sequence_model(split, catalog, SequenceConfig(n_items=len(catalog),
                                                            item_repr="id"))


def test_self_attention_covers_the_history_window():
    catalog, log = cyclic_log(n_users=5, length=10)
    model = tiny(n_items=len(catalog))
    trained = TrainedModel(model, list(catalog.ids))
    history = np.arange(10) % len(catalog)
    weights, n = trained.self_attention(history)
    assert n == 6 and weights.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(weights[..., np.triu(np.ones((6, 6), dtype=bool), k=1)] == 0)
    older = history.copy()
    older[:4] = [11, 10, 9, 8]  # outside the window of the last six: nothing changes
    np.testing.assert_array_equal(trained.self_attention(older)[0], weights)
    newer = history.copy()
    newer[4] = 11  # the oldest item inside the window
    assert not np.allclose(trained.self_attention(newer)[0], weights)


def test_seen_items_mark_each_positions_past():
    model = tiny(n_items=10)
    items = torch.tensor([[0, 0, 3, 5, 3], [1, 2, 4, 6, 8]])
    where = torch.tensor([[False, False, True, True, True], [True, False, False, False, True]])
    marks = SeenItems.of_prefixes(items, where, width=11)
    seen = marks.dense()
    assert seen.shape == (5, 11)
    assert seen[0].nonzero().flatten().tolist() == [3]
    assert seen[1].nonzero().flatten().tolist() == [3, 5]
    assert seen[2].nonzero().flatten().tolist() == [3, 5]  # met twice, offset once
    assert seen[3].nonzero().flatten().tolist() == [1]
    assert seen[4].nonzero().flatten().tolist() == [1, 2, 4, 6, 8]
    rows = torch.arange(5).unsqueeze(1)
    torch.testing.assert_close(marks.contains(rows, torch.arange(11).unsqueeze(0)), seen)
    with torch.no_grad():
        model.repeat.fill_(-2.0)
    shifted = marks.add(torch.zeros(5, 11), model.repeat)
    torch.testing.assert_close(shifted, -2.0 * seen.float())


def test_seen_items_of_histories_match_the_histories():
    histories = [np.array([2, 0, 2]), np.array([], dtype=np.int64), np.array([4])]
    seen = SeenItems.of_histories(histories, width=5).dense().numpy()
    assert seen.tolist() == [[True, False, True, False, False], [False] * 5,
                             [False, False, False, False, True]]


def test_the_repeat_offset_is_learned_from_data_without_repeats():
    catalog, log = cyclic_log(n_items=30, length=20)  # nobody meets an item twice
    split = leave_last_out(log, catalog)
    config = SequenceConfig(n_items=len(catalog), max_len=8, hidden=16, layers=1, heads=2,
                            item_repr="id")
    trained = train_sequence_model(split, catalog, config,
                                   TrainConfig(epochs=5, batch_size=8, lr=5e-3, patience=5))
    assert trained.model.repeat.item() < -0.01


def test_shuffled_windows_move_the_boundaries_between_epochs():
    histories = [np.arange(40)]
    rng = np.random.default_rng(0)
    cuts = {tuple(len(t) for t in training_windows(histories, max_len=8, rng=rng).targets)
            for _ in range(10)}
    assert len(cuts) > 1
    fixed = {tuple(len(t) for t in training_windows(histories, max_len=8).targets)
             for _ in range(3)}
    assert len(fixed) == 1


def test_weight_averaging_validates_and_keeps_the_averaged_weights():
    catalog, split, config = cycle_task()
    averaged = train_sequence_model(split, catalog, config,
                                    TrainConfig(epochs=20, batch_size=16, lr=5e-3, patience=20,
                                                average=0.9))
    assert averaged.history[averaged.best_epoch - 1].valid_hr == 1.0  # it still learns the cycle
    # an average that never moves keeps the initial weights, whatever the optimiser did
    frozen = train_sequence_model(split, catalog, config,
                                  TrainConfig(epochs=2, batch_size=16, lr=5e-3, average=1.0))
    torch.manual_seed(0)
    initial = SASRec(config)
    torch.testing.assert_close(frozen.model.item_id.weight, initial.item_id.weight)
    assert frozen.history[-1].train_loss < frozen.history[0].train_loss  # the live model trained


@pytest.mark.parametrize("average", [0.0, 0.9])
def test_training_stops_after_patience_epochs_without_progress(average):
    catalog, log = cyclic_log(n_users=10, length=8)
    split = leave_last_out(log, catalog)
    config = SequenceConfig(n_items=len(catalog), max_len=4, hidden=16, layers=1, heads=2,
                            item_repr="id")
    trained = train_sequence_model(split, catalog, config,
                                   TrainConfig(epochs=50, lr=0.0, patience=2, average=average))
    assert len(trained.history) == 3 and trained.best_epoch == 1  # nothing can improve at lr 0

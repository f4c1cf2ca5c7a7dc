"""Cross-fitted tuning lists for the LLM re-ranker: the moments are each user's last training
events, and the lists come from a copy of the first stage that never trained on them."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from ctxrec.cli import main
from ctxrec.data.movielens import load_movielens
from ctxrec.evaluation.split import leave_last_out
from ctxrec.sequence.train import load_checkpoint
from ctxrec.tune.cross_fit import held_back, proxy_first_stage
from ctxrec.tune.reranker import rerank_lists


@pytest.fixture(scope="module")
def split_and_catalog(tiny_movielens):
    catalog, interactions = load_movielens(tiny_movielens)
    return leave_last_out(interactions, catalog, "exact"), catalog


def test_the_last_training_events_are_held_back_and_become_the_moments(split_and_catalog):
    split = copy.deepcopy(split_and_catalog[0])
    short = next(iter(split.histories))
    split.histories[short] = split.histories[short][:4]  # keeps 3, so only one is held back
    split.ratings[short] = split.ratings[short][:4]
    split.history_times[short] = split.history_times[short][:4]
    reduced, queries, targets = held_back(split, 2)
    assert reduced.test == {} and len(queries) == len(targets)
    counted = 0
    for user, items in split.histories.items():
        kept = reduced.histories[user]
        back = 1 if user == short else 2
        assert np.array_equal(kept, items[:len(items) - back])
        assert reduced.valid[user].item == items[len(kept)]
        assert reduced.valid[user].timestamp == split.history_times[user][len(kept)]
        mine = [(q, t) for q, t in zip(queries, targets) if q.user == user]
        assert [t for _, t in mine] == items[len(kept):].tolist()
        for query, target in mine:  # each moment knows what came before it, up to its time
            n = len(query.items)
            assert np.array_equal(query.items, items[:n]) and items[n] == target
            assert query.timestamp == split.history_times[user][n]
        counted += len(mine)
    assert counted == len(queries) == 2 * len(split.histories) - 1
    # the held-back events are no longer training interactions; the validation and test
    # events never were, and none of them is a moment
    expected = np.bincount(np.concatenate(list(reduced.histories.values())),
                           minlength=len(split.train_counts))
    assert np.array_equal(reduced.train_counts, expected)
    assert reduced.train_counts.sum() == sum(map(len, split.histories.values())) - counted
    with pytest.raises(ValueError, match="at least one event"):
        held_back(split, 0)


def test_the_proxy_is_the_first_stage_trained_again_without_the_moments(tiny_movielens,
                                                                        split_and_catalog,
                                                                        tmp_path, capsys):
    split, catalog = split_and_catalog
    assert main(["train", "--data", str(tiny_movielens), "--item-repr", "hybrid",
                 "--max-len", "8", "--hidden", "16", "--epochs", "6", "--seed", "3",
                 "--out", str(tmp_path / "seq")]) == 0
    capsys.readouterr()
    first = load_checkpoint(tmp_path / "seq")
    reduced, queries, targets = held_back(split, 3)
    proxy = proxy_first_stage(first, reduced, catalog)
    trained = proxy.trained
    assert trained.config == first.config and trained.encoder == first.encoder
    assert trained.train.seed == 3 and len(trained.history) <= max(first.best_epoch, 1)
    assert np.allclose(trained.model.text_vectors.numpy(), first.model.text_vectors.numpy())
    # only the held-back events' items lost their training interactions
    assert np.array_equal(trained.model.known[1:].numpy(), reduced.train_counts > 0)
    lists = rerank_lists(proxy, queries, targets, catalog, k=6)
    assert [lst.target for lst in lists] == targets
    assert all(len(lst.candidates) == 6 for lst in lists)


def test_the_command_tunes_on_cross_fitted_lists(tiny_movielens, tiny_llm_folder, tmp_path,
                                                 capsys):
    assert main(["train", "--data", str(tiny_movielens), "--item-repr", "id", "--max-len", "8",
                 "--hidden", "16", "--epochs", "2", "--out", str(tmp_path / "seq")]) == 0
    capsys.readouterr()
    assert main(["tune-llm", "--data", str(tiny_movielens), "--checkpoint",
                 str(tmp_path / "seq"), "--model", str(tiny_llm_folder), "--cross-fit", "2",
                 "--top-k", "6", "--eval-every", "5", "--out", str(tmp_path / "adapter")]) == 0
    said = capsys.readouterr()
    run = json.loads(said.out)
    assert "training the proxy first stage" in said.err
    assert run["cross_fit"] == 2 and "cross-fitted" in run["split"]
    assert run["moments"] == 2 * 40  # every tiny user has 28 training events
    assert 0 <= run["moments_with_item_in_k"] <= run["moments"]
    assert (tmp_path / "adapter" / "ctxrec-reranker.json").exists()
    assert main(["tune-llm", "--data", str(tiny_movielens), "--checkpoint",
                 str(tmp_path / "seq"), "--cross-fit", "-1"]) == 2
    assert "--cross-fit must be 0 (off) or more" in capsys.readouterr().err

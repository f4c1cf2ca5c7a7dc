"""Sequence training in two processes under torchrun (DDP, gloo) against one process."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT
from safetensors.numpy import load_file

from ctxrec.sequence.distributed import Ranks
from ctxrec.sequence.model import SequenceInput


def _train(data, out, *launch):
    # no dropout and no weight average: the two runs then differ only in float summation order
    args = ["train", "--data", str(data), "--item-repr", "id", "--dropout", "0", "--average",
            "0", "--epochs", "3", "--batch-size", "8", "--max-len", "8", "--patience", "10",
            "--out", str(out), *(["--distributed"] if launch else [])]
    run = subprocess.run([sys.executable, *launch, "-m", "ctxrec", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout), load_file(str(out / "model.safetensors"))


def test_two_processes_train_the_same_model_as_one(tiny_movielens, tmp_path):
    one, one_weights = _train(tiny_movielens, tmp_path / "one")
    two, two_weights = _train(tiny_movielens, tmp_path / "two", "-m", "torch.distributed.run",
                              "--standalone", "--nproc_per_node", "2")
    assert two["training"]["processes"] == 2 and "processes" not in one["training"]
    # the global batch's loss, as one process computes it (rank 0 prints the mean of both)
    for a, b in zip(one["training"]["curve"], two["training"]["curve"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["valid_ndcg"] == pytest.approx(a["valid_ndcg"], abs=1e-9)
    # stated tolerance: after 3 epochs of Adam no weight differs by more than 1e-3
    assert one_weights.keys() == two_weights.keys()
    for name in one_weights:
        diff = np.abs(one_weights[name].astype(np.float64) - two_weights[name]).max()
        assert diff < 1e-3, name
    assert two["results"][0]["NDCG@10"] == pytest.approx(one["results"][0]["NDCG@10"], abs=1e-6)


def test_a_slice_of_the_batch_weighs_its_share_of_the_targets():
    group = Ranks()
    group.world = 2
    batch = SequenceInput(items=torch.arange(15).reshape(5, 3))
    targets = torch.tensor([[0, 1, 2], [0, 0, 3], [4, 5, 6], [0, 0, 7], [0, 8, 9]])
    for rank in (0, 1):
        group.rank = rank
        rows, mine, scale = group.slice(batch, targets)
        assert torch.equal(rows.items, batch.items[[0, 1, 2]] if rank == 0 else batch.items[3:])
        # DDP averages the ranks' gradients: a target on this rank then counts
        # scale / (world · its targets), which must be 1 / 9, as in one process's mean
        assert scale / (group.world * int((mine > 0).sum())) == pytest.approx(1 / 9)
    group.world, group.rank = 6, 5  # more ranks than rows: the last takes part with weight 0
    rows, _, scale = group.slice(batch, targets)
    assert len(rows.items) == 1 and scale == 0


def test_distributed_outside_torchrun_says_how_to_start_it(tiny_movielens, tmp_path):
    run = subprocess.run([sys.executable, "-m", "ctxrec", "train", "--data", str(tiny_movielens),
                          "--item-repr", "id", "--distributed", "--out", str(tmp_path / "m")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "torchrun --standalone --nproc_per_node 2 -m ctxrec train" in run.stderr

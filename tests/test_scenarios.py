import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from ctxrec.data.context import Context
from ctxrec.data.scenarios import (Scenario, ScenarioError, ScenarioStore, load_presets,
                                   scenarios_from_json, scenarios_to_json, store_path)


def test_presets_are_valid_stories_over_known_items(catalog):
    presets = load_presets()
    assert len(presets) >= 8 and len({s.name for s in presets}) == len(presets)
    for scenario in presets:
        assert scenario.story and scenario.unknown_items(catalog) == []
    assert len({(s.context.daypart, s.context.place) for s in presets}) >= 7


def test_json_round_trip():
    presets = load_presets()
    assert scenarios_from_json(scenarios_to_json(presets)) == presets
    one = json.dumps(presets[0].to_dict())
    assert scenarios_from_json(one) == [presets[0]]


def test_store_save_rename_load_delete(tmp_path):
    store = ScenarioStore(tmp_path / "s.sqlite")
    first, second = load_presets()[:2]
    store.save(first)
    store.save(second)
    assert store.names() == sorted([first.name, second.name])
    store.rename(first.name, "Renamed")
    assert store.load("Renamed").context == first.context and first.name not in store.names()
    with pytest.raises(ScenarioError, match="already exists"):
        store.rename("Renamed", second.name)
    with pytest.raises(ScenarioError, match="empty"):
        store.rename("Renamed", "  ")
    store.save(Scenario("Renamed", "new story", Context(intent="changed")))
    assert store.load("Renamed").story == "new story"  # saving a name again replaces it
    store.delete("Renamed")
    assert store.names() == [second.name] and store.check()
    with pytest.raises(KeyError, match="no saved scenario"):
        store.load("Renamed")


def test_store_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_SCENARIOS", str(tmp_path / "elsewhere.sqlite"))
    assert store_path() == tmp_path / "elsewhere.sqlite"
    assert ScenarioStore().path == tmp_path / "elsewhere.sqlite"


WRITER = """
import sys
from ctxrec.data.context import Context
from ctxrec.data.scenarios import Scenario, ScenarioStore
store = ScenarioStore(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    store.save(Scenario(f"churn {i % 50}", "x" * 2000, Context(intent="y" * 5000)))
    i += 1
"""


def test_sigkill_during_saves_keeps_earlier_scenarios(tmp_path):
    path = tmp_path / "s.sqlite"
    store = ScenarioStore(path)
    presets = load_presets()
    for scenario in presets:
        store.save(scenario)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.4)  # mid-way through a stream of saves
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reopened = ScenarioStore(path)
        assert reopened.check()
        for scenario in presets:
            assert reopened.load(scenario.name) == scenario
        assert any(n.startswith("churn") for n in reopened.names())

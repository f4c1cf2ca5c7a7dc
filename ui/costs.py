"""The cost panel: where a ranking's time went, stage by stage, and where this server process's
start-up went."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import streamlit as st

from ctxrec import Ranking
from ctxrec.viz import costs_figure

# stage → seconds, the first time each ran in this server process (module state: one process,
# every session)
STARTUP: dict[str, float] = {}


@contextmanager
def startup_stage(name: str) -> Iterator[None]:
    """Time a start-up stage; only its first run in this process is kept."""
    start = time.perf_counter()
    yield
    STARTUP.setdefault(name, time.perf_counter() - start)


def render_costs(ranking: Ranking, key: str) -> None:
    """A caption with the total and an expander with the stages, as measured in this call."""
    costs = ranking.costs
    if costs is None:
        return
    STARTUP.setdefault("first ranking", costs.total_ms / 1000)
    scored = (f"{ranking.candidates:,} candidates through the vector index"
              if ranking.candidates is not None else "every item scored exactly")
    with st.expander(f"⏱️ Where the {costs.total_ms:,.0f} ms went"):
        st.plotly_chart(costs_figure([s.stage for s in costs.stages],
                                     [s.ms for s in costs.stages], costs.total_ms), key=key)
        st.dataframe(pd.DataFrame([{"stage": s.stage, "ms": round(s.ms, 2), "device": s.device,
                                    "dtype": s.dtype, "memory (MiB)": round(s.memory_mb, 1),
                                    "memory": s.memory} for s in costs.stages]),
                     hide_index=True, key=f"{key}_table")
        st.caption(f"Measured in this call: {scored}; the stages account for "
                   f"{costs.accounted:.0%} of it. Process peak memory "
                   f"{costs.peak_rss_mb:,.0f} MiB.")
        if STARTUP:
            st.caption("This server's start-up: " + " · ".join(
                f"{name} {seconds:.2f} s" for name, seconds in STARTUP.items()))

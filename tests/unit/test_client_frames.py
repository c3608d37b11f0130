"""DataFrames show short ids and times to the second; the data keep full values."""

from __future__ import annotations

import pandas as pd

from mesonb.client import state
from mesonb.client.frames import short_id, shown

AGENT = "025b5946-4f37-43ea-9781-eae9f472c530-S1"


def test_short_ids():
    assert short_id(AGENT) == "025b5946…S1"
    assert short_id("025b5946-4f37-43ea-9781-eae9f472c530-0001") == "025b5946…0001"
    assert short_id("abs-0-8e7dee8b") == "abs-0-8e7dee8b"
    assert len(short_id("x" * 60)) == 24


def test_a_frame_shows_short_ids_and_seconds_but_keeps_the_data():
    rows = [{"task_id": "abs-0-8e7dee8b", "agent_id": AGENT, "name": "abs",
             "updated_time": 1_800_000_000.123456}]
    df = shown(state.frame(rows, {"task_id": "text", "agent_id": "text", "name": "text",
                                  "updated_time": "time"}))
    text = repr(df)
    assert "025b5946…S1" in text and AGENT not in text
    assert "2027-01-15 08:00:00+00:00" in text and ".123" not in text
    assert "025b5946…S1" in df._repr_html_()
    assert df.agent_id.iloc[0] == AGENT  # the data: whole
    assert df.updated_time.iloc[0].microsecond == 123456
    selected = df[df.name == "abs"]
    assert type(selected) is type(df) and "025b5946…S1" in repr(selected)
    assert isinstance(df, pd.DataFrame)

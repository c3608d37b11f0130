""""Why is my task pending?": the client's :mod:`mesonb.client.explain`, under its
former name (``fut.explain()`` builds one)."""

from mesonb.client.explain import AgentFit, Explanation, call_state, explain, explain_future

__all__ = ["AgentFit", "Explanation", "call_state", "explain", "explain_future"]

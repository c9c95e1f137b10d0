"""Flows: the needs graph and the trigger rules that decide what runs after what."""

from __future__ import annotations

from jobd.flows.graph import downstream, find_cycle, format_cycle, topological_order
from jobd.flows.rules import (
    FlowDecision,
    FlowState,
    Result,
    Verdict,
    aggregate,
    explain,
    judge,
    result_of,
)

__all__ = [
    "FlowDecision",
    "FlowState",
    "Result",
    "Verdict",
    "aggregate",
    "downstream",
    "explain",
    "find_cycle",
    "format_cycle",
    "judge",
    "result_of",
    "topological_order",
]

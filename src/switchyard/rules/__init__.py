"""The condition language: parse once, check against declared facts, compile to a closure."""

from switchyard.rules.compile import Condition, compile_condition
from switchyard.rules.parse import parse

__all__ = ["Condition", "compile_condition", "parse"]

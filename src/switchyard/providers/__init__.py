"""Providers: how to reach a model. One seam, `execute(call) -> Result` (`providers/base.py`).

Nothing is imported here: `config` loading reads `providers/command_template.py`,
and importing this package must not pull in the process or HTTP machinery.
"""

"""Providers: how to reach a model. One seam, `execute(call) -> Result`."""

from switchyard.providers.base import (
    PROVIDER_FACTORIES,
    Call,
    ChildProcesses,
    Provider,
    ProviderContext,
    Result,
    make_provider,
)

__all__ = ["PROVIDER_FACTORIES", "Call", "ChildProcesses", "Provider", "ProviderContext", "Result", "make_provider"]

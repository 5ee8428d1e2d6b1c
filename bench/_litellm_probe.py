"""LiteLLM's side of bench_core.py, run INSIDE the LiteLLM venv (stdlib + litellm only).

Started by bench_core.py with the venv's interpreter; speaks the `_bench_worker` protocol.
The same work as switchyard's side:

* ``pick6``: ``Router.get_available_deployment`` on one model group of 6 deployments
  (gpt-4o, claude-sonnet-4-5, deepseek-chat, two each; fake keys; api_base on
  127.0.0.1:9 so a stray request could never leave the host).
* ``pick3x2``: the same 6 deployments as 3 groups of 2; the calls cycle over the groups.
* ``cost``: ``litellm.cost_per_token`` for gpt-4o, 1000 prompt / 500 completion tokens.
* ``cost_cache``: claude-sonnet-4-5 with 1000 uncached prompt tokens, 2000 cache reads,
  500 cache writes and 500 completion tokens.

Its first line tells the driver LiteLLM's prices for those models (per token, as the
shortest decimal of each float), so switchyard's catalog can use the very same ones and the
two costs can be checked equal. Before litellm is imported, socket connect/getaddrinfo are
replaced by guards that record and refuse any attempt; the ``io`` answer reports them.
"""

from __future__ import annotations

import os
import socket
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _bench_worker import protocol_stream, serve

_NET_ATTEMPTS: list[str] = []


def _guard(name, original):  # type: ignore[no-untyped-def]
    def blocked(*args, **kwargs):  # type: ignore[no-untyped-def]
        _NET_ATTEMPTS.append(f"{name}{args[1:] if name.startswith('socket.socket') else args}"[:200])
        raise OSError(f"network access blocked by _litellm_probe ({name})")

    blocked.__wrapped__ = original
    return blocked


socket.socket.connect = _guard("socket.socket.connect", socket.socket.connect)  # type: ignore[method-assign]
socket.socket.connect_ex = _guard("socket.socket.connect_ex", socket.socket.connect_ex)  # type: ignore[method-assign]
socket.getaddrinfo = _guard("socket.getaddrinfo", socket.getaddrinfo)
socket.create_connection = _guard("socket.create_connection", socket.create_connection)

GROUPS = {
    "gpt-4o": "openai/gpt-4o",
    "claude-sonnet-4-5": "anthropic/claude-sonnet-4-5",
    "deepseek-chat": "deepseek/deepseek-chat",
}
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the attached changelog in three bullet points."},
]
PRICE_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
)


def _deployment(group: str, model: str, ident: str) -> dict:  # type: ignore[type-arg]
    return {
        "model_name": group,
        "litellm_params": {"model": model, "api_key": f"sk-fake-{ident}", "api_base": f"http://127.0.0.1:9/{ident}"},
        "model_info": {"id": ident},
    }


def main() -> None:
    stream = protocol_stream()
    import litellm
    from litellm import Router

    ids = {g: [f"{g}-1", f"{g}-2"] for g in GROUPS}
    router6 = Router(model_list=[_deployment("chat", GROUPS[g], i) for g in GROUPS for i in ids[g]])
    router3x2 = Router(model_list=[_deployment(g, GROUPS[g], i) for g in GROUPS for i in ids[g]])
    groups = list(GROUPS)
    turn = iter(range(10**12))

    def pick6() -> object:
        return router6.get_available_deployment(model="chat", messages=MESSAGES)

    def pick3x2() -> object:
        return router3x2.get_available_deployment(model=groups[next(turn) % 3], messages=MESSAGES)

    def cost() -> tuple[float, float]:
        return litellm.cost_per_token(model="gpt-4o", prompt_tokens=1000, completion_tokens=500)

    def cost_cache() -> tuple[float, float]:
        # LiteLLM's prompt_tokens counts the cached tokens too (OpenAI convention).
        return litellm.cost_per_token(
            model="claude-sonnet-4-5",
            prompt_tokens=3500,
            completion_tokens=500,
            cache_read_input_tokens=2000,
            cache_creation_input_tokens=500,
        )

    def picked(router: object, group: str) -> list[str]:
        return sorted(
            {router.get_available_deployment(model=group, messages=MESSAGES)["model_info"]["id"] for _ in range(200)}  # type: ignore[attr-defined]
        )

    from importlib.metadata import version

    prices = {
        g: {k: repr(float(litellm.model_cost[g][k])) for k in PRICE_KEYS if litellm.model_cost[g].get(k) is not None}
        for g in GROUPS
    }
    serve(
        stream,
        {"pick6": pick6, "pick3x2": pick3x2, "cost": cost, "cost_cache": cost_cache},
        {
            "pick6": lambda: picked(router6, "chat"),
            "pick3x2": lambda: {g: picked(router3x2, g) for g in GROUPS},
            "cost": lambda: repr(sum(cost())),
            "cost_cache": lambda: repr(sum(cost_cache())),
            "io": lambda: {"network_attempts": _NET_ATTEMPTS[:10], "total": len(_NET_ATTEMPTS)},
        },
        {"version": version("litellm"), "prices": prices},
    )


if __name__ == "__main__":
    main()

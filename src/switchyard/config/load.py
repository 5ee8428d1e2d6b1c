"""Find, read, validate and compile a config file.

`load_config(path)` either returns a fully checked `LoadedConfig` (every
reference resolved, every condition compiled, the catalog built) or raises one
`ConfigError` listing every problem with its file, key path, line and column.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from switchyard._records import record
from switchyard.catalog import Catalog

if TYPE_CHECKING:
    from pathlib import Path

    from switchyard.config.locate import Loc, PathKey
from switchyard.config.delivery import (
    DeliveryConfig,
    SourceConfig,
    VerifyConfig,
    WorkspaceConfig,
    check_sections,
)
from switchyard.config.deprecated import apply_renames
from switchyard.config.lint import lint_provider
from switchyard.config.provider_kinds import CallShape, worst_case
from switchyard.config.schema import (
    PROVIDER_KINDS,
    BudgetLimit,
    BudgetsConfig,
    CommandProvider,
    Config,
    CoordinatorConfig,
    HealthConfig,
    LedgerConfig,
    ModelConfig,
    ProviderConfig,
    RoutingConfig,
    RunnerConfig,
    SimulatedProvider,
    WorkflowConfig,
)
from switchyard.config.validate import Reader, parse_path, path_str
from switchyard.errors import ConfigError, Problem, did_you_mean
from switchyard.facts import DEPRECATED_FACTS, build_schema
from switchyard.money import usd
from switchyard.providers.command_template import PLACEHOLDERS, placeholders_in
from switchyard.rules.compile import Condition, compile_condition

__all__ = ["CONFIG_ENV", "DEFAULT_CONFIG", "SECTIONS", "LoadedConfig", "find_config", "load_config", "loads_config"]

CONFIG_ENV = "SWITCHYARD_CONFIG"
DEFAULT_CONFIG = "switchyard.toml"
TAKEOVER_MARGIN_S = 5.0  # [coordinator] takeover_s - lease_s: time for a machine that lost its lease to fence itself

# Top-level tables beyond the core ones, registered by the parts that own them:
# name -> function(reader, raw, path) returning the validated section.
SECTIONS: dict[str, Callable[[Reader, Any, PathKey], Any]] = {}


def register_section(name: str, cls: type) -> None:
    """Validate top-level table `name` with dataclass `cls` (its defaults when the table is absent)."""

    def validate(reader: Reader, raw: Any, path: PathKey) -> Any:
        built = reader.build(cls, raw, path)
        return built if built is not None else cls()

    SECTIONS[name] = validate


register_section("ledger", LedgerConfig)
register_section("runner", RunnerConfig)
register_section("health", HealthConfig)
register_section("coordinator", CoordinatorConfig)
register_section("budgets", BudgetsConfig)
register_section("workspace", WorkspaceConfig)
register_section("delivery", DeliveryConfig)


def _verify_section(reader: Reader, raw: Any, path: PathKey) -> VerifyConfig:
    """`[verify]`: present (even empty) turns verification on, with the built-in checks."""
    built: VerifyConfig | None = reader.build(VerifyConfig, raw, path) if raw is not None else None
    if built is None:
        return VerifyConfig()
    return replace(built, enabled=True)


def _sources_section(reader: Reader, raw: Any, path: PathKey) -> tuple[SourceConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.error(path, "expected an array of tables: write [[sources]] for each source")
        return ()
    converted = reader.convert(tuple[SourceConfig, ...], raw, path)
    return converted if isinstance(converted, tuple) else ()


SECTIONS["verify"] = _verify_section
SECTIONS["sources"] = _sources_section
_ABSENT = {"verify": None, "sources": None}  # sections whose absence means something: no default table
_CORE = ("providers", "models", "routing", "workflows")


@record
class LoadedConfig:
    """A validated config with its compiled rules and catalog."""

    config: Config
    catalog: Catalog
    conditions: tuple[Condition, ...]
    warnings: tuple[Problem, ...] = ()
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.config.path

    @property
    def routing(self) -> RoutingConfig:
        assert self.config.routing is not None
        return self.config.routing

    @property
    def providers(self) -> dict[str, ProviderConfig]:
        return self.config.providers

    @property
    def workflows(self) -> dict[str, WorkflowConfig]:
        return self.config.workflows

    @property
    def ledger(self) -> LedgerConfig:
        return self.sections["ledger"]  # type: ignore[no-any-return]

    @property
    def runner(self) -> RunnerConfig:
        return self.sections["runner"]  # type: ignore[no-any-return]

    @property
    def health(self) -> HealthConfig:
        return self.sections["health"]  # type: ignore[no-any-return]

    @property
    def coordinator(self) -> CoordinatorConfig:
        return self.sections["coordinator"]  # type: ignore[no-any-return]

    @property
    def budgets(self) -> BudgetsConfig:
        return self.sections["budgets"]  # type: ignore[no-any-return]

    @property
    def workspace(self) -> WorkspaceConfig:
        return self.sections["workspace"]  # type: ignore[no-any-return]

    @property
    def verify(self) -> VerifyConfig:
        return self.sections["verify"]  # type: ignore[no-any-return]

    @property
    def delivery(self) -> DeliveryConfig:
        return self.sections["delivery"]  # type: ignore[no-any-return]

    @property
    def sources(self) -> tuple[SourceConfig, ...]:
        return self.sections["sources"]  # type: ignore[no-any-return]

    def locate(self, error: ConfigError) -> ConfigError:
        """`error` with this config's file, line and column filled in where a problem names only a key.

        Some config problems show only when the value is used (a ledger URL that does not connect);
        they are raised with a key path, and placed in the file here.
        """
        if not any(p.key_path and (not p.file or p.line is None) for p in error.problems):
            return error
        from switchyard.config.locate import index_toml

        index = index_toml(self.config.source)
        problems = []
        for p in error.problems:
            if p.key_path and (not p.file or p.line is None):
                loc = index.get(parse_path(p.key_path))
                p = replace(
                    p,
                    file=p.file or self.path,
                    line=p.line if p.line is not None or loc is None else loc.value_line,
                    col=p.col if p.line is not None or loc is None else loc.value_col,
                )
            problems.append(p)
        return ConfigError(problems)

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        import pathlib  # not at module level: `route` never needs it

        p = pathlib.Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir() / p

    def ledger_location(self) -> str:
        """The ledger's `postgresql://` URL or SQLite file path."""
        if self.ledger.url:
            return self.ledger.url
        # os.path, not pathlib: `route` calls this and pathlib costs ~8 ms to import.
        path = os.path.expanduser(self.ledger.path)
        if os.path.isabs(path):
            return path
        base = os.path.dirname(os.path.abspath(self.config.path)) if self.config.path else os.getcwd()
        return os.path.join(base, path)

    def base_dir(self) -> Path:
        """The folder relative paths in the config are resolved against."""
        import pathlib

        return pathlib.Path(self.config.path).resolve().parent if self.config.path else pathlib.Path.cwd()


def find_config(explicit: str | None) -> str:
    """`--config`, then `$SWITCHYARD_CONFIG`, then `./switchyard.toml`."""
    if explicit:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return env
    return DEFAULT_CONFIG


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read and validate the config at `path`."""
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError.single(
            "config file not found",
            file=str(p),
            hint="pass --config FILE, set $SWITCHYARD_CONFIG, or create one with 'switchyard init'",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.single(f"cannot read the config file: {exc}", file=str(p)) from None
    return loads_config(text, str(p))


_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


class _Loader:
    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.reader = Reader()
        self.extra: list[Problem] = []
        self.warnings: list[Problem] = []
        self._index: dict[PathKey, Loc] | None = None
        self.provider_names: set[str] = set()
        self.sections_built: dict[str, Any] = {}
        self.model_names: set[str] = set()
        self.usage_format_stated: set[str] = set()  # providers whose table sets usage_format

    @property
    def index(self) -> dict[PathKey, Loc]:
        if self._index is None:
            from switchyard.config.locate import index_toml  # only needed to place errors

            self._index = index_toml(self.text)
        return self._index

    def where(self, path: PathKey, *, at_key: bool = False) -> tuple[int | None, int | None]:
        loc = self.index.get(path)
        while loc is None and path:
            path = path[:-1]
            loc = self.index.get(path)
            at_key = True
        if loc is None:
            return None, None
        return (loc.line, loc.col) if at_key else (loc.value_line, loc.value_col)

    def problem(self, path: PathKey, message: str, hint: str | None = None) -> Problem:
        line, col = self.where(path, at_key=message.startswith(("unknown key", "missing required")))
        return Problem(message, key_path=path_str(path), file=self.file, line=line, col=col, hint=hint)

    def error(self, path: PathKey, message: str, hint: str | None = None) -> None:
        self.extra.append(self.problem(path, message, hint))

    def warn(self, path: PathKey, message: str, hint: str | None = None) -> None:
        self.warnings.append(self.problem(path, message, hint))

    def all_problems(self) -> list[Problem]:
        problems = [self.problem(p, m, h) for p, m, h in self.reader.problems] + self.extra
        return sorted(problems, key=lambda pr: (pr.line or 0, pr.col or 0))

    # sections ---------------------------------------------------------------
    def providers(self, raw: Any) -> dict[str, ProviderConfig]:
        out: dict[str, ProviderConfig] = {}
        if isinstance(raw, dict):
            self.provider_names.update(raw)  # declared, even if invalid: no second error for refs
        if not isinstance(raw, dict):
            self.error(("providers",), "expected a table of providers, e.g. [providers.claude-cli]")
            return out
        for name, table in raw.items():
            path: PathKey = ("providers", name)
            if not isinstance(table, dict):
                self.error(path, f"expected a table, e.g. [providers.{name}]")
                continue
            kind = table.get("kind")
            if kind is None:
                if "command_template" in table:
                    kind = "command"
                else:
                    self.error(
                        path,
                        f"provider '{name}' has no kind",
                        "set kind = " + " | ".join(repr(k) for k in PROVIDER_KINDS) + ", or give a command_template",
                    )
                    continue
            registered = PROVIDER_KINDS.get(kind) if isinstance(kind, str) else None
            if registered is None:
                self.error(
                    (*path, "kind"),
                    f"unknown provider kind {kind!r}" + did_you_mean(str(kind), PROVIDER_KINDS),
                    "kinds: " + ", ".join(PROVIDER_KINDS),
                )
                continue
            if "usage_format" in table:
                self.usage_format_stated.add(name)
            built = self.reader.build(registered.config, {**table, "kind": kind}, path, name=name)
            if built is not None:
                out[name] = built
        return out

    def run(self) -> LoadedConfig:
        try:
            data = tomllib.loads(self.text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            m = _TOML_POS.search(msg)
            line = int(m.group(1)) if m else None
            col = int(m.group(2)) if m else None
            raise ConfigError(
                [Problem(f"not valid TOML: {_TOML_POS.sub('', msg).strip()}", file=self.file, line=line, col=col)]
            ) from None
        except RecursionError:
            raise ConfigError.single(
                "arrays or inline tables are nested too deeply to read",
                file=self.file,
                hint="a config nests a few levels at most: look for a run of '[' or '{'",
            ) from None

        for moved in apply_renames(data):
            (self.error if moved.error else self.warn)(
                moved.old, moved.message, "switchyard config migrate FILE writes the file with the new names"
            )
        for key in data:
            if key not in _CORE and key not in SECTIONS:
                known = list(_CORE) + list(SECTIONS)
                mean = did_you_mean(key, known)
                self.error(
                    (key,), f"unknown key '{key}'{mean}", None if mean else "top-level tables: " + ", ".join(known)
                )
        providers = self.providers(data.get("providers", {}))
        models_raw = data.get("models", [])
        models: tuple[ModelConfig, ...] = ()
        if not isinstance(models_raw, list):
            self.error(("models",), "expected an array of tables: write [[models]] for each model")
        else:
            self.model_names = {m["name"] for m in models_raw if isinstance(m, dict) and isinstance(m.get("name"), str)}
            converted = self.reader.convert(tuple[ModelConfig, ...], models_raw, ("models",))
            if isinstance(converted, tuple):
                models = converted
        routing: RoutingConfig | None = None
        if "routing" not in data:
            self.error(("routing",), "missing [routing] table", 'add [routing] with default_model = "MODEL"')
        else:
            routing = self.reader.build(RoutingConfig, data["routing"], ("routing",))
        workflows: dict[str, WorkflowConfig] = {}
        wf_raw = data.get("workflows", {})
        if not isinstance(wf_raw, dict):
            self.error(("workflows",), "expected tables such as [workflows.standard]")
        else:
            for name, table in wf_raw.items():
                built = self.reader.build(WorkflowConfig, table, ("workflows", name), name=name)
                if built is not None:
                    workflows[name] = built
        sections = {}
        for name, validate in SECTIONS.items():
            sections[name] = validate(self.reader, data.get(name, _ABSENT.get(name, {})), (name,))
        self.sections_built = sections
        for path, message, hint in check_sections(sections):
            self.error(path, message, hint)
        self.check_coordinator(sections.get("coordinator"))

        self.check_references(providers, models, routing, workflows)
        conditions = self.compile_conditions(providers, models, routing, workflows)
        self.lint(providers)
        problems = self.all_problems()
        catalog = Catalog.from_config(models)
        if not problems:  # on a config that is otherwise right: no second error about a broken model
            self.check_holds(providers, models, catalog)
            problems = self.all_problems()
        if problems:
            raise ConfigError(problems)
        config = Config(providers, models, routing, workflows, path=self.file, source=self.text)
        return LoadedConfig(
            config=config,
            catalog=catalog,
            conditions=conditions,
            warnings=tuple(sorted(self.warnings, key=lambda pr: (pr.line or 0, pr.col or 0))),
            sections=sections,
        )

    def check_coordinator(self, cfg: object) -> None:
        """The lease timings must let a machine fence itself before another takes its work over."""
        if not isinstance(cfg, CoordinatorConfig):
            return
        at = ("coordinator",)
        if cfg.renew_s * 2 > cfg.lease_s:
            self.error(
                (*at, "renew_s"),
                f"renew_s ({cfg.renew_s:g}) must be at most half of lease_s ({cfg.lease_s:g})",
                "a lease must survive one late renewal",
            )
        if cfg.takeover_s < cfg.lease_s + TAKEOVER_MARGIN_S:
            self.error(
                (*at, "takeover_s"),
                f"takeover_s ({cfg.takeover_s:g}) must be at least lease_s + {TAKEOVER_MARGIN_S:g} "
                f"({cfg.lease_s + TAKEOVER_MARGIN_S:g})",
                "a machine that lost its lease needs that margin to stop its agents before another takes over",
            )
        if cfg.executor_id is not None:
            self.warn(
                (*at, "executor_id"),
                "executor_id is set: every machine that uses this config shares it, and a second one is refused "
                "while the first holds it",
                "remove it: each installation makes its own (.switchyard/executor_id)",
            )

    # cross-references --------------------------------------------------------
    def need_model(self, name: str, path: PathKey, models: dict[str, ModelConfig]) -> None:
        if name in models or name in self.model_names:
            return  # declared (an invalid declaration has its own error already)
        mean = did_you_mean(name, models)
        self.error(
            path,
            f"unknown model '{name}'{mean}",
            None if mean else "declare it in a [[models]] entry" + (f"; models: {', '.join(models)}" if models else ""),
        )

    def check_references(
        self,
        providers: dict[str, ProviderConfig],
        models: tuple[ModelConfig, ...],
        routing: RoutingConfig | None,
        workflows: dict[str, WorkflowConfig],
    ) -> None:
        by_name: dict[str, ModelConfig] = {}
        for i, m in enumerate(models):
            if m.name in by_name:
                self.error(("models", i, "name"), f"duplicate model name '{m.name}'", "each model name must be unique")
            by_name[m.name] = m
            if m.provider not in providers and m.provider not in self.provider_names:
                mean = did_you_mean(m.provider, providers)
                self.error(
                    ("models", i, "provider"),
                    f"unknown provider '{m.provider}'{mean}",
                    None if mean else f"declare it as [providers.{m.provider}]",
                )
            seen: set[int] = set()
            for j, tier in enumerate(m.tiers):
                if tier.above_input_tokens in seen:
                    self.error(("models", i, "tiers", j), "two tiers with the same above_input_tokens")
                seen.add(tier.above_input_tokens)
        for name, p in providers.items():  # what a provider table says about the models it serves
            for key, message in p.model_problems([m.name for m in models if m.provider == name]):
                self.error(("providers", name, *key), message)
        if routing is not None:
            if routing.default_model:
                self.need_model(routing.default_model, ("routing", "default_model"), by_name)
            if routing.timezone is not None:
                try:
                    ZoneInfo(routing.timezone)
                except (ZoneInfoNotFoundError, ValueError):
                    from zoneinfo import available_timezones

                    self.error(
                        ("routing", "timezone"),
                        f"unknown time zone '{routing.timezone}'"
                        + did_you_mean(routing.timezone, available_timezones()),
                        "use an IANA name such as 'Europe/Berlin' or 'UTC'",
                    )
            if routing.default_workflow is not None:
                self.need_workflow(routing.default_workflow, ("routing", "default_workflow"), workflows)
            for i, rule in enumerate(routing.rules):
                path: PathKey = ("routing", "rules", i)
                targets = sum(x is not None for x in (rule.model, rule.split))
                if targets > 1:
                    self.error(path, "a rule has either model or split, not both")
                elif targets == 0 and rule.workflow is None:
                    self.error(path, "a rule needs model, split or workflow", 'add model = "MODEL"')
                if rule.model is not None:
                    self.need_model(rule.model, (*path, "model"), by_name)
                for arm in rule.split or {}:
                    self.need_model(arm, (*path, "split", arm), by_name)
                for j, fb in enumerate(rule.fallbacks):
                    self.need_model(fb, (*path, "fallbacks", j), by_name)
                if rule.workflow is not None:
                    self.need_workflow(rule.workflow, (*path, "workflow"), workflows)
                if rule.experiment is not None and rule.split is None:
                    self.warn((*path, "experiment"), "experiment is only recorded for rules with a split")
        self.check_budgets(providers, by_name, workflows)
        for name, wf in workflows.items():
            if not wf.stages:
                self.error(("workflows", name, "stages"), "a workflow needs at least one stage")
            names: set[str] = set()
            for i, stage in enumerate(wf.stages):
                path = ("workflows", name, "stages", i)
                if stage.name in names:
                    self.error((*path, "name"), f"duplicate stage name '{stage.name}'")
                names.add(stage.name)
                if stage.model is not None and stage.route:
                    self.error(path, "a stage has either model or route = true, not both")
                elif stage.model is None and not stage.route:
                    self.error(path, 'a stage needs model = "MODEL" or route = true')
                if stage.model is not None:
                    self.need_model(stage.model, (*path, "model"), by_name)
                if stage.prompt is not None and stage.prompt_file is not None:
                    self.error(path, "a stage has either prompt or prompt_file, not both")
                if stage.loop_to is not None and stage.loop_to not in names:
                    self.error(
                        (*path, "loop_to"),
                        f"loop_to must name an earlier stage of workflow '{name}', got '{stage.loop_to}'"
                        + did_you_mean(stage.loop_to, names),
                    )
                if (stage.reject_if or stage.verdict_field) and stage.loop_to is None:
                    self.error(
                        path, 'reject_if / verdict_field need loop_to = "STAGE" (where a rejected task goes back to)'
                    )
                for j, cap in enumerate(stage.requires):
                    if not any(cap in m.capabilities for m in models):
                        self.error((*path, "requires", j), f"no model has the capability '{cap}'")

    def check_budgets(
        self, providers: dict[str, ProviderConfig], models: dict[str, ModelConfig], workflows: dict[str, WorkflowConfig]
    ) -> None:
        budgets = self.sections_built.get("budgets")
        if budgets is None:
            return
        for i, limit in enumerate(budgets.limits):
            kind, _, target = limit.scope.partition(":")
            known: dict[str, Any] = {"provider": providers, "model": models, "workflow": workflows}
            if kind in known and target not in known[kind]:
                self.error(
                    ("budgets", "limits", i, "scope"),
                    f"unknown {kind} '{target}'" + did_you_mean(target, known[kind], f"'{kind}:{{}}'".format),
                )
        if budgets.all_limits():
            # One warning for all of them, at the first: the same fact, printed once.
            open_ended = [n for n, p in providers.items() if isinstance(p, CommandProvider) and p.max_cost_usd is None]
            if open_ended:
                names = ", ".join(f"'{n}'" for n in open_ended)
                who = f"provider {names} has" if len(open_ended) == 1 else f"providers {names} have"
                self.warn(
                    ("providers", open_ended[0]),
                    f"budgets are set but {who} no max_cost_usd: each call holds "
                    f"budgets.cli_hold_usd ({usd(budgets.cli_hold_usd)}) and may spend more",
                    'set max_cost_usd (and max_cost_flag, e.g. ["--max-budget-usd", "{max_cost_usd}"] for claude)',
                )

    def check_holds(
        self, providers: dict[str, ProviderConfig], models: tuple[ModelConfig, ...], catalog: Catalog
    ) -> None:
        """A limit smaller than the least a call can hold admits no call, ever: its tasks would wait forever.

        Budgets hold a call's worst case before it starts (`provider_kinds.worst_case`); the least of it is
        knowable at load (an empty prompt, the cheapest time of day). Workflow and label limits apply only to
        some tasks, so only global, provider and model limits are checked.
        """
        budgets: BudgetsConfig | None = self.sections_built.get("budgets")
        if budgets is None:
            return
        limits = _limit_paths(budgets)
        if not limits:
            return
        least = {
            m.name: _least_hold(m, providers[m.provider], budgets, catalog)
            for m in models
            if providers[m.provider].enabled
        }
        told: set[str] = set()  # providers and models already reported: once each, against the tightest limit
        for path, limit in sorted(limits, key=lambda pl: (pl[1].on_exceed != "block", pl[1].limit_usd)):
            kind, _, target = limit.scope.partition(":")
            covered = [
                m
                for m in models
                if m.name in least
                and (kind == "global" or (kind, target) in (("provider", m.provider), ("model", m.name)))
            ]
            unfit = [m for m in covered if least[m.name][0] > limit.limit_usd and m.name not in told]
            if not unfit:
                continue
            per = f"{_setting(path)} ({usd(limit.limit_usd)} per {limit.period})"
            block = limit.on_exceed == "block"
            if len(unfit) == len(covered):
                told.update(m.name for m in unfit)
                told.update(m.provider for m in unfit)
                cheapest = min(unfit, key=lambda m: least[m.name][0])
                amount, why = least[cheapest.name]
                everything = len(covered) == len(least)
                tail = (
                    "so its tasks would wait forever"
                    if block
                    else "so no task can ever run"
                    if everything
                    else "so every call it covers is passed on to another candidate (downgrade)"
                )
                (self.error if block or everything else self.warn)(
                    (*path, "limit_usd") if path[1] == "limits" else path,
                    f"no call can ever start under {per}: the least any call it covers holds is {usd(amount)} "
                    f"({cheapest.name}: {why}), {tail}",
                    f"raise the limit to at least {usd(amount)}, or make calls hold less (see 'budgets' in the README)",
                )
                continue
            for provider in sorted({m.provider for m in unfit} - told):
                mine = [m for m in covered if m.provider == provider]
                theirs = [m for m in unfit if m.provider == provider]
                told.update(m.name for m in theirs)
                if len(theirs) < len(mine):
                    for m in theirs:
                        amount, why = least[m.name]
                        self.warn(
                            ("models", models.index(m), "name"),
                            f"no call to model '{m.name}' can ever fit under {per}: it holds {usd(amount)} ({why}); "
                            + (
                                "tasks routed to it wait until the limit is raised"
                                if block
                                else "calls to it are always downgraded"
                            ),
                        )
                    continue
                told.add(provider)
                amount, why = min((least[m.name] for m in theirs), key=lambda held: held[0])
                p = providers[provider]
                where: PathKey = (
                    ("providers", provider, "max_cost_usd") if p.max_cost_usd is not None else ("providers", provider)
                )
                tail = (
                    "so the tasks routed to it would wait forever" if block else "so calls to it are always downgraded"
                )
                hint = f"raise the limit to at least {usd(amount)}, or " + (
                    "lower max_cost_usd" if isinstance(p, CommandProvider) else "lower the models' max_output_tokens"
                )
                if isinstance(p, CommandProvider) and p.max_cost_usd is None:
                    hint = f"set max_cost_usd below {usd(limit.limit_usd)} (and max_cost_flag, so the CLI keeps to it), or raise the limit"
                (self.error if block else self.warn)(
                    where,
                    f"no call to provider '{provider}' can ever start under {per}: each holds {usd(amount)} ({why}), {tail}",
                    hint,
                )

    def need_workflow(self, name: str, path: PathKey, workflows: dict[str, WorkflowConfig]) -> None:
        if name in workflows:
            return
        mean = did_you_mean(name, workflows)
        self.error(path, f"unknown workflow '{name}'{mean}", None if mean else f"declare it as [workflows.{name}]")

    def compile_conditions(
        self,
        providers: dict[str, ProviderConfig],
        models: Iterable[ModelConfig],
        routing: RoutingConfig | None,
        workflows: dict[str, WorkflowConfig],
    ) -> tuple[Condition, ...]:
        if routing is None:
            return ()
        schema = build_schema(providers=providers, models=[m.name for m in models], workflows=workflows)
        out: list[Condition] = []
        for i, rule in enumerate(routing.rules):
            path: PathKey = ("routing", "rules", i, "condition")
            try:
                compiled = compile_condition(rule.condition, schema)
                out.append(compiled)
                for name, instead in DEPRECATED_FACTS.items():
                    if name in dict(compiled.reads):
                        self.warn(
                            path,
                            f"the bare fact '{name}' is deprecated: write {instead}",
                            "switchyard config migrate FILE rewrites it",
                        )
            except ConfigError as exc:
                for pr in exc.problems:
                    line, col = self.condition_position(path, pr.span[0] if pr.span else 0)
                    self.extra.append(replace(pr, key_path=path_str(path), file=self.file, line=line, col=col))
        return tuple(out)

    def condition_position(self, path: PathKey, offset: int) -> tuple[int | None, int | None]:
        """File line/col of character `offset` inside the condition string at `path`."""
        loc = self.index.get(path)
        if loc is None:
            return self.where(path)
        raw = self.text[loc.value_offset : loc.value_offset + 3]
        quote = 3 if raw in ('"""', "'''") else 1 if raw[:1] in "\"'" else 0
        body_start = loc.value_offset + quote
        if quote == 1 and "\\" in self.text[body_start : body_start + offset]:
            return loc.value_line, loc.value_col  # escapes shift columns; point at the string
        if quote == 3:
            absolute = body_start + offset + (1 if self.text[body_start : body_start + 1] == "\n" else 0)
            line = self.text.count("\n", 0, absolute) + 1
            return line, absolute - (self.text.rfind("\n", 0, absolute) + 1) + 1
        return loc.value_line, loc.value_col + quote + offset

    # lint --------------------------------------------------------------------
    def check_commands(self, providers: dict[str, ProviderConfig]) -> None:
        """Templates use known placeholders; stdin pipes the prompt file; output stays in the run dir."""
        for name, p in providers.items():
            if not isinstance(p, CommandProvider):
                continue
            path: PathKey = ("providers", name)
            if not p.command_template:
                self.error(
                    (*path, "command_template"),
                    "command_template is empty",
                    'e.g. ["claude", "-p", "--model", "{model}"]',
                )
            for key, template in (("command_template", p.command_template), ("max_cost_flag", p.max_cost_flag)):
                for i, element in enumerate(template):
                    for ph in placeholders_in(element):
                        if ph not in PLACEHOLDERS:
                            self.error(
                                (*path, key, i),
                                f"unknown placeholder {{{ph}}}" + did_you_mean(ph, PLACEHOLDERS, "{{{}}}".format),
                                "placeholders: " + ", ".join("{" + x + "}" for x in sorted(PLACEHOLDERS)),
                            )
            if p.stdin is not None and p.stdin != "{prompt_file}":
                self.error((*path, "stdin"), f'stdin can only be "{{prompt_file}}", got {p.stdin!r}')
            parts = p.output_file.replace("\\", "/").split("/")
            if os.path.isabs(p.output_file) or ".." in parts or not p.output_file.strip():
                self.error((*path, "output_file"), "output_file must be a plain relative name inside the run directory")

    def lint(self, providers: dict[str, ProviderConfig]) -> None:
        self.check_commands(providers)
        for name, p in providers.items():
            for f in lint_provider(name, p, usage_format_stated=name in self.usage_format_stated):
                (self.error if f.error else self.warn)(f.path, f.message, f.hint)


def _limit_paths(budgets: BudgetsConfig) -> list[tuple[PathKey, BudgetLimit]]:
    """Each limit with where it is written: the `daily_usd` shorthand or a `[[budgets.limits]]` entry."""
    out: list[tuple[PathKey, BudgetLimit]] = []
    shorthand = (
        ("daily_usd", "day", budgets.daily_usd),
        ("weekly_usd", "week", budgets.weekly_usd),
        ("monthly_usd", "month", budgets.monthly_usd),
    )
    for key, period, amount in shorthand:
        if amount is not None:
            out.append((("budgets", key), BudgetLimit("global", period, amount, "block")))  # type: ignore[arg-type]
    out += [(("budgets", "limits", i), limit) for i, limit in enumerate(budgets.limits)]
    return out


def _setting(path: PathKey) -> str:
    return path_str(path) if path[1] != "limits" else f"the limit {path_str(path)}"


def _least_hold(
    model: ModelConfig, provider: ProviderConfig, budgets: BudgetsConfig, catalog: Catalog
) -> tuple[Decimal, str]:
    """The least a call to `model` holds (an empty prompt, the cheapest time of day), and why, for messages."""
    if isinstance(provider, CommandProvider):
        amount = worst_case(provider, CallShape(catalog[model.name], "", None, _NOON, budgets))
        why = (
            "its max_cost_usd"
            if provider.max_cost_usd is not None
            else "budgets.cli_hold_usd, as it sets no max_cost_usd"
        )
        return amount, why
    # The output ceiling a budgeted call is sent with (as the runner sets it).
    out = model.max_output_tokens or getattr(provider, "max_output_tokens", None) or budgets.default_max_output_tokens
    cm = catalog[model.name]
    times = [_NOON.replace(hour=h) for h in range(24)] + [
        _NOON.replace(hour=w.start_min // 60, minute=w.start_min % 60) for w in cm.off_peak
    ]
    amount = min(worst_case(provider, CallShape(cm, "", out, at, budgets)) for at in times)
    if isinstance(provider, SimulatedProvider):
        return amount, "the top of its simulated token ranges"
    return amount, f"{out} output tokens at its output price, with an empty prompt"


_NOON = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def loads_config(text: str, file: str = "<string>") -> LoadedConfig:
    """Validate config text; `file` is used in error messages."""
    return _Loader(text, file).run()

"""Fault plans for the simulator: what goes wrong, where and when (issue 3, item 6).

A :class:`Fault` is one scheduled misbehaviour of a simulated venue; a :class:`FaultPlan` is a
list of them. Plans are plain data (msgspec Structs), so they load from JSON/YAML files and from
the ``candlekeeper simulate --faults SPEC`` string, and :meth:`FaultPlan.random` spreads ``count``
faults of the requested kinds over a time window, deterministically for a seed.

**Time base: wall seconds since the simulator started.** Faults damage *delivery* — frames on a
socket, answers to HTTP requests — and every party that reacts to them (a client's REST timeout,
its stall watchdog, a ping deadline) waits in wall time, so ``at_s`` and ``duration_s`` are wall
seconds; at a speed-up of ``speed`` a fault at ``at_s`` hits venue time
``start_time_ms + at_s * speed * 1000``. The 24 h connection lifetime stays in venue time
(``Simulator(connection_lifetime_s=...)``); the ``lifetime`` fault ends a connection early.

**Faults never touch the market.** ``Simulator.closed_candles`` and every REST answer that does
come back are the same with or without a plan; only WebSocket frames and HTTP responses suffer.

This module is pure (no I/O, no clock); :mod:`candlekeeper.sim.injector` applies faults.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from candlekeeper.errors import ConfigError

FaultKind = Literal[
    "disconnect", "close", "stall", "drop_pings", "duplicate", "reorder", "malformed",
    "truncated", "missing_close", "lifetime", "server_shutdown",
    "rest_429", "rest_418", "rest_5xx", "rest_timeout", "rest_slow", "refuse",
]

#: WebSocket faults that act on whole connections at the moment they fire
CONNECTION_KINDS: tuple[str, ...] = ("disconnect", "close", "lifetime", "malformed",
                                     "server_shutdown", "refuse")
#: WebSocket faults that shape frames (or pings) for a while / for ``count`` frames
FRAME_KINDS: tuple[str, ...] = ("stall", "drop_pings", "duplicate", "reorder", "truncated",
                                "missing_close")
WS_KINDS: tuple[str, ...] = CONNECTION_KINDS + FRAME_KINDS
REST_KINDS: tuple[str, ...] = ("rest_429", "rest_418", "rest_5xx", "rest_timeout", "rest_slow")
#: what ``kinds="all"`` means: every fault of issue 3 (``server_shutdown`` is opt-in: the
#: shutdown notice is a reason to rotate, not a failure; ``refuse`` — every WebSocket handshake
#: refused for a while — is the transport fallback's test, not a delivery fault)
ALL_KINDS: tuple[str, ...] = tuple(k for k in WS_KINDS + REST_KINDS
                                   if k not in ("server_shutdown", "refuse"))

#: params each kind accepts, with their types (anything else is a ConfigError)
PARAMS: dict[str, dict[str, type]] = {
    "disconnect": {}, "lifetime": {},
    "close": {"code": int, "reason": str},
    "malformed": {},
    "server_shutdown": {"delay_s": float},
    "stall": {"pings": bool},
    "drop_pings": {},
    "duplicate": {"closed": bool},
    "reorder": {"closed": bool},
    "truncated": {"closed": bool},
    "missing_close": {"tail": bool},
    "rest_429": {"retry_after_s": int},
    "rest_418": {},
    "rest_5xx": {"status": int},
    "rest_timeout": {"hold_s": float},
    "rest_slow": {"delay_s": float},
    "refuse": {"status": int},
}
_NEEDS_DURATION = ("rest_418", "refuse")
_STATUS_5XX = (500, 502, 503, 504)
Param = bool | int | float | str


class Target(msgspec.Struct, frozen=True):
    """Parsed ``target``: ``all``, ``one`` (one connection, picked by the seed when the fault
    fires), ``conn:<id>``, ``stream:<name>`` or ``symbol:<SYMBOL>``."""

    scope: Literal["all", "one", "conn", "stream", "symbol"]
    value: str = ""

    def matches_stream(self, stream: str) -> bool:
        """Does a frame of ``stream`` (``btcusdt@kline_1m``, ``BTC-USDT@kline_1m``) fall under
        this target? Symbols compare without separators and case, so ``symbol:BTCUSDT`` also
        matches a venue's hyphenated ``BTC-USDT@kline_1m`` topics."""
        if self.scope == "stream":
            return stream == self.value
        if self.scope == "symbol":
            symbol, sep, _ = stream.partition("@")
            return bool(sep) and symbol.replace("-", "").lower() == self.value
        return True


def parse_target(text: str) -> Target:
    if text in ("all", "one"):
        return Target(text)  # type: ignore[arg-type]
    scope, sep, value = text.partition(":")
    if not sep or not value or scope not in ("conn", "stream", "symbol"):
        raise ConfigError(f"bad fault target {text!r}: expected all, one, conn:<id>, "
                          "stream:<name> or symbol:<SYMBOL>")
    if scope == "conn" and not value.isdigit():
        raise ConfigError(f"bad fault target {text!r}: a connection id is an integer")
    if scope == "symbol":
        value = value.replace("-", "").lower()  # canonical, as matches_stream compares
    return Target(scope, value)  # type: ignore[arg-type]


class Fault(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One misbehaviour. ``at_s``: wall seconds after the simulator started (ignored by
    ``Simulator.inject``, which applies at once). ``venue``: None for every simulated venue.

    Scope of frame and REST faults: active from ``at_s`` for ``duration_s`` (None: no time
    limit) and for ``count`` hits (per connection for WebSocket faults, per venue for REST;
    None: no count limit); with neither given a fault hits once. ``fraction`` makes each
    matching frame or request a hit with that probability (seeded). ``malformed`` injects
    ``count`` bad frames at once. ``stall`` / ``drop_pings`` with no ``duration_s`` never
    resume. ``rest_418`` bans every client for ``duration_s``. ``missing_close`` drops the frame
    that closes a candle (a frame with a closed flag; on a venue without one, the candle's last
    push); with ``params={"tail": True}`` it hits the next frame of any candle and drops every
    frame of that candle from there on (a candle's last seconds, or all of it).
    """

    kind: FaultKind
    at_s: float = 0.0
    venue: str | None = None
    target: str = "all"
    duration_s: float | None = None
    count: int | None = None
    fraction: float | None = None
    params: dict[str, Param] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        tgt = parse_target(self.target)
        if self.at_s < 0:
            raise ConfigError(f"{self.kind}: at_s must be >= 0, got {self.at_s}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(f"{self.kind}: duration_s must be > 0, got {self.duration_s}")
        if self.count is not None and self.count < 1:
            raise ConfigError(f"{self.kind}: count must be >= 1, got {self.count}")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ConfigError(f"{self.kind}: fraction must be in (0, 1], got {self.fraction}")
        if self.kind in _NEEDS_DURATION and self.duration_s is None:
            raise ConfigError(f"{self.kind}: duration_s (how long it lasts) is required")
        if self.kind in REST_KINDS and tgt.scope not in ("all", "symbol"):
            raise ConfigError(f"{self.kind}: a REST fault targets all or symbol:<SYMBOL>, "
                              f"not {self.target!r}")
        allowed = PARAMS[self.kind]
        for key, value in self.params.items():
            want = allowed.get(key)
            if want is None:
                known = ", ".join(allowed) or "none"
                raise ConfigError(f"{self.kind}: unknown param {key!r} (known: {known})")
            ok = (isinstance(value, bool) if want is bool else
                  isinstance(value, int | float) and not isinstance(value, bool)
                  if want is float else isinstance(value, want) and not isinstance(value, bool))
            if not ok:
                raise ConfigError(f"{self.kind}: param {key!r} must be {want.__name__}, "
                                  f"got {value!r}")
        status = self.params.get("status")
        if status is not None and status not in _STATUS_5XX:
            raise ConfigError(f"rest_5xx: status must be one of {_STATUS_5XX}, got {status}")
        code = self.params.get("code")
        if code is not None and not (isinstance(code, int) and 1000 <= code <= 4999):
            raise ConfigError(f"close: code must be a WebSocket close code, got {code}")

    @property
    def target_spec(self) -> Target:
        return parse_target(self.target)

    def param(self, key: str, default: Param) -> Any:
        return self.params.get(key, default)


class FaultRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One applied fault effect, as ``Simulator.fault_log`` lists it."""

    fault_id: int
    kind: str
    venue: str
    wall_s: float  # seconds since the simulator started
    venue_ms: int  # venue time
    connection: int | None = None
    stream: str | None = None
    open_time: int | None = None  # the candle a frame fault hit
    detail: str = ""


class FaultPlan(msgspec.Struct):
    """Faults ordered by ``at_s`` (sorted on construction; treat as immutable)."""

    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.faults, key=lambda f: f.at_s))
        if ordered != self.faults:
            self.faults = ordered

    def __iter__(self) -> Iterator[Fault]:
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def kinds(self) -> set[str]:
        return {f.kind for f in self.faults}

    @classmethod
    def of(cls, faults: Iterable[Fault]) -> FaultPlan:
        return cls(tuple(faults))

    @classmethod
    def random(cls, seed: int, *, kinds: str | Sequence[str] = "all", count: int = 50,
               window: tuple[float, float] = (0.0, 60.0), venues: Sequence[str] | None = None,
               symbols: Sequence[str] = (), durations: tuple[float, float] = (0.5, 5.0),
               rest_delay_s: tuple[float, float] = (0.5, 3.0),
               timeout_hold_s: float = 30.0) -> FaultPlan:
        """``count`` faults at uniformly random wall times in ``window``; every requested kind
        appears at least once when ``count >= len(kinds)``. ``durations`` bounds stalls, ping
        pauses and bans; ``rest_delay_s`` slow answers; ``timeout_hold_s`` is how long a
        timed-out request is held. The same arguments always give the same plan."""
        wanted = resolve_kinds(kinds)
        lo, hi = window
        if not 0 <= lo <= hi:
            raise ConfigError(f"bad fault window {window}: expected 0 <= start <= end")
        if count < 0:
            raise ConfigError(f"fault count must be >= 0, got {count}")
        rng = random.Random(seed)
        picked = list(wanted[:count]) if count < len(wanted) else list(wanted)
        picked += [rng.choice(wanted) for _ in range(count - len(picked))]
        rng.shuffle(picked)
        times = sorted(rng.uniform(lo, hi) for _ in picked)
        faults = [_random_fault(rng, kind, round(at, 3), venues, symbols, durations,
                                rest_delay_s, timeout_hold_s)
                  for kind, at in zip(picked, times, strict=True)]
        return cls(tuple(faults))


def resolve_kinds(kinds: str | Sequence[str]) -> tuple[str, ...]:
    names = (kinds.replace("+", ",").split(",") if isinstance(kinds, str) else list(kinds))
    out: list[str] = []
    for name in (n.strip() for n in names):
        group = {"all": ALL_KINDS, "ws": tuple(k for k in WS_KINDS if k != "server_shutdown"),
                 "rest": REST_KINDS}.get(name)
        if group is not None:
            out += group
        elif name in PARAMS:
            out.append(name)
        elif name:
            raise ConfigError(f"unknown fault kind {name!r}; expected all, ws, rest or one of "
                              f"{', '.join(PARAMS)}")
    if not out:
        raise ConfigError("no fault kinds given")
    return tuple(dict.fromkeys(out))


def _random_fault(rng: random.Random, kind: str, at: float, venues: Sequence[str] | None,
                  symbols: Sequence[str], durations: tuple[float, float],
                  rest_delay: tuple[float, float], hold: float) -> Fault:
    venue = rng.choice(list(venues)) if venues else None
    dur = round(rng.uniform(*durations), 3)
    params: dict[str, Param] = {}
    duration: float | None = None
    count: int | None = None
    roll = rng.random()
    if kind in REST_KINDS:
        target = f"symbol:{rng.choice(list(symbols))}" if symbols and roll < 0.2 else "all"
    elif symbols and roll < 0.25:
        target = f"symbol:{rng.choice(list(symbols))}"
    else:
        target = "one" if roll < 0.7 else "all"
    if kind == "close":
        params["code"] = rng.choice((1001, 1011, 1000))
    elif kind == "server_shutdown":
        params["delay_s"] = round(rng.uniform(0.1, 2.0), 3)
    elif kind in ("stall", "drop_pings"):
        duration = dur
        if kind == "stall":
            params["pings"] = rng.random() < 0.5
    elif kind in ("duplicate", "reorder", "truncated"):
        count = rng.randint(1, 5)
        params["closed"] = rng.random() < 0.5
    elif kind in ("missing_close", "malformed"):
        count = rng.randint(1, 3)
    elif kind == "rest_418":
        duration = dur
    elif kind == "rest_429":
        count, params["retry_after_s"] = rng.randint(1, 3), rng.randint(1, 2)
    elif kind == "rest_5xx":
        count, params["status"] = rng.randint(1, 3), rng.choice(_STATUS_5XX)
    elif kind == "rest_timeout":
        count, params["hold_s"] = 1, hold
    elif kind == "rest_slow":
        count, params["delay_s"] = rng.randint(1, 3), round(rng.uniform(*rest_delay), 3)
    return Fault(kind=kind, at_s=at, venue=venue, target=target,  # type: ignore[arg-type]
                 duration_s=duration, count=count, params=params)


# -- loading -----------------------------------------------------------------------------------
def parse_fault_spec(spec: str) -> FaultPlan:
    """``random:seed=7,count=60,kinds=all,window=0:300`` or a path to a JSON/YAML plan.

    Random keys: ``seed``, ``count``, ``kinds`` (``all``, ``ws``, ``rest`` or kind names joined
    by ``+``), ``window`` (``end`` or ``start:end``, wall seconds), ``venues`` and ``symbols``
    (joined by ``+``), ``durations`` (``lo:hi`` seconds). A file holds a list of faults, or
    ``{"faults": [...]}``, or ``{"random": {<the same keys>}}``.
    """
    if spec.startswith("random:") or spec == "random":
        return _random_from(dict(_kv(p) for p in spec[7:].split(",") if p.strip()))
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"--faults {spec!r}: neither random:<options> nor an existing file")
    try:
        text = path.read_text()
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read fault plan {path}: {exc}") from exc
    return plan_from_data(data, str(path))


def plan_from_data(data: Any, where: str = "fault plan") -> FaultPlan:
    if isinstance(data, dict) and set(data) == {"random"} and isinstance(data["random"], dict):
        return _random_from({str(k): str(v) for k, v in data["random"].items()})
    items = data.get("faults") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a list of faults, {{'faults': [...]}} or "
                          "{'random': {...}}")
    try:
        return FaultPlan(msgspec.convert(items, tuple[Fault, ...]))
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _kv(part: str) -> tuple[str, str]:
    key, sep, value = part.partition("=")
    if not sep:
        raise ConfigError(f"bad fault option {part!r}: expected key=value")
    return key.strip(), value.strip()


def _span(text: str, key: str) -> tuple[float, float]:
    try:
        lo, _, hi = text.rpartition(":")
        return (float(lo) if lo else 0.0), float(hi)
    except ValueError:
        raise ConfigError(f"bad {key} {text!r}: expected <end> or <start>:<end> seconds") from None


def _split(value: str) -> list[str]:
    return [s.strip() for s in value.split("+") if s.strip()]


def _random_from(opts: dict[str, str]) -> FaultPlan:
    known = {"seed", "count", "kinds", "window", "venues", "symbols", "durations"}
    unknown = set(opts) - known
    if unknown:
        raise ConfigError(f"unknown random fault option(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
    try:
        seed, count = int(opts.get("seed", "1")), int(opts.get("count", "50"))
    except ValueError:
        raise ConfigError(f"seed and count must be integers: {opts}") from None
    return FaultPlan.random(
        seed, kinds=opts.get("kinds", "all"), count=count,
        window=_span(opts.get("window", "60"), "window"),
        venues=_split(opts["venues"]) if "venues" in opts else None,
        symbols=[s.upper() for s in _split(opts.get("symbols", ""))],
        durations=_span(opts.get("durations", "0.5:5"), "durations"))

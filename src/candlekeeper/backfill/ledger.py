"""A venue's REST weight budget shared by every candlekeeper process of one host (issue 12).

Why: a venue counts REST weight per IP, but each process has its own :class:`WeightBudget`.
Three ``candlekeeper run --shard K/3`` warming up at once each believed it had the whole budget,
spent three times the limit and got 429s, then a ban. A venue that reports its count in a header
only lets us notice afterwards; one that reports nothing (``HistoryCodec.rate_usage``) not even
that.

So every grant also goes through a small file shared by the processes of this host that talk to
the same venue at the same REST endpoint (venue id + scheme/host/port of the base URL: the real
venue's processes share one, simulators on different ports in parallel tests never do). Under an
exclusive ``flock`` held only for the read-modify-write of a few hundred bytes (never across a
sleep), a process prunes grants older than the window, checks that the sum of *every* process's
grants in the sliding window leaves room, appends its own and writes back. A 429's Retry-After
or a 418 ban is written as ``blocked_until``, so one process's verdict stops all of them.

Grant times are rounded *up* to 1/100 of the window, which keeps the file at ~100 entries per
window at any request rate, and only ever makes a grant expire later than it really does (never
a grant over the limit). A crashed process's grants simply age out of the window.

Robust by design: a file that cannot be opened or locked for long, or a directory that is not
private to this user, is one WARNING and a counter, and the process budgets alone (as before
this ledger existed) — never a traceback, never a stall. Contents that do not parse (a crash
in the middle of a write, another version's format) are one WARNING and a counter too, and the
ledger starts afresh from an empty state, which loses at most one window of other processes'
grants.

Ledgers of endpoints no longer used (a simulator's random port, a venue URL since changed)
would pile up: each new ledger sweeps its folder once, removing a ledger untouched for
:data:`STALE_AFTER_S` whose every grant has aged out and whose block has passed (checked under
its lock, so a ledger in use is never removed).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

log = logging.getLogger(__name__)

__all__ = ["SharedLedger", "default_ledger_dir", "ledger_path"]

#: grant times are rounded up to this fraction of the window (bounds the file's size)
BUCKETS_PER_WINDOW = 100
#: how long a process waits for another one's lock before budgeting alone for that request
LOCK_PATIENCE_S = 2.0
#: a deadline further ahead than this is no venue's ban (the longest known last 3 days)
MAX_BLOCK_S = 4 * 86_400.0
#: bytes read at most: a real ledger is a few KiB
MAX_BYTES = 1 << 20
FORMAT = 1
#: a ledger not written for this long is a candidate for the sweep (if nothing in it is live)
STALE_AFTER_S = 3_600.0
#: ledgers looked at per sweep, at most (a sweep runs once per ledger a process opens)
SWEEP_LIMIT = 2_000


class _State(msgspec.Struct, forbid_unknown_fields=True):
    v: int = FORMAT
    blocked_until: float = 0.0
    #: window length (``repr`` of seconds) -> [(rounded grant time, weight), ...]
    windows: dict[str, list[tuple[float, int]]] = msgspec.field(default_factory=dict)


_decoder = msgspec.json.Decoder(_State)
_encoder = msgspec.json.Encoder()


class _Corrupt(Exception):
    pass


def default_ledger_dir() -> Path:
    """``$XDG_RUNTIME_DIR/candlekeeper`` (per user, on tmpfs, cleared at logout), else a
    per-uid folder in the temporary directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "candlekeeper"
    return Path(tempfile.gettempdir()) / f"candlekeeper-{os.getuid()}"


def ledger_path(directory: Path, venue: str, base_url: str) -> Path:
    """The ledger of ``venue`` at the REST endpoint of ``base_url`` (scheme, host and port;
    the path does not matter: a venue counts per IP)."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower() or "https"
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # a malformed port: still one stable name
        port = 0
    key = f"{venue}|{scheme}|{host}|{port}"
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{venue}_{host}_{port}")[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return directory / f"{safe}-{digest}.budget"


def _private_dir(directory: Path) -> None:
    """Create ``directory`` (0700) if needed and check it is ours and not writable by others:
    a ledger another user could write would let them stall or overrun our budget."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, "not a directory (or a symlink)", str(directory))
    if st.st_uid != os.getuid():
        raise OSError(errno.EPERM, "owned by another user", str(directory))
    if st.st_mode & 0o022:
        raise OSError(errno.EPERM, "writable by other users", str(directory))


class SharedLedger:
    """The grants and the block of one venue endpoint, shared through one locked file.

    Every :class:`WeightBudget` of a client (one per window of the venue) uses the same ledger;
    each window keeps its own list of grants. ``count_error`` is called with ``"rest_ledger"``
    for every problem (the service counts it in ``candlekeeper_errors_total``).
    """

    def __init__(self, path: Path, *,
                 count_error: Callable[[str], object] | None = None) -> None:
        self.path = path
        #: problems met (unreadable, corrupt, lock held too long)
        self.errors = 0
        #: False once the file proved unusable: this process budgets alone from then on
        self.usable = True
        #: the latest ``blocked_until`` read from the file
        self.blocked_until = 0.0
        #: wall time of this process's latest grant, read under the lock
        self.last_grant_at = 0.0
        self._count_error = count_error
        self._warned = False
        self._busy_since: float | None = None
        try:
            _private_dir(path.parent)
        except OSError as exc:
            self._give_up(f"cannot use the folder {path.parent}: {exc.strerror or exc}")
        else:
            #: stale ledgers of other endpoints removed when this one was opened
            self.swept = sweep_stale(path.parent, time.time(), keep=path)

    @classmethod
    def for_endpoint(cls, venue: str, base_url: str, directory: str | Path | None = None, *,
                     count_error: Callable[[str], object] | None = None) -> SharedLedger:
        folder = Path(directory) if directory is not None else default_ledger_dir()
        return cls(ledger_path(folder, venue, base_url), count_error=count_error)

    # -- problems ---------------------------------------------------------------------------
    def _problem(self, message: str) -> None:
        self.errors += 1
        if self._count_error is not None:
            self._count_error("rest_ledger")
        if not self._warned:  # one line per process; the counter counts the rest
            self._warned = True
            log.warning("shared REST budget %s: %s", self.path, message)

    def _give_up(self, message: str) -> None:
        self.usable = False
        self._problem(f"{message}; this process budgets the venue's REST weight alone")

    # -- the file ---------------------------------------------------------------------------
    def _update(self, change: Callable[[_State], float | None], now: float) -> float | None:
        """Lock, read, ``change`` the state, write it back if it changed something, unlock.
        Returns what ``change`` returns; raises BlockingIOError while another process holds
        the lock and OSError when the file is unusable."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            raw = os.pread(fd, MAX_BYTES, 0)
            try:
                state = self._decode(raw, now)
            except _Corrupt as exc:
                self._problem(f"unreadable contents ({exc}); starting it afresh")
                state = _State()
                raw = b""
            result = change(state)
            out = _encoder.encode(state)
            if out != raw:
                os.pwrite(fd, out, 0)
                os.ftruncate(fd, len(out))
            self.blocked_until = state.blocked_until
            return result
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @staticmethod
    def _decode(raw: bytes, now: float) -> _State:
        if not raw:
            return _State()
        if len(raw) >= MAX_BYTES:
            raise _Corrupt("too large")
        try:
            state = _decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise _Corrupt(str(exc)) from None
        if state.v != FORMAT:
            raise _Corrupt(f"format {state.v}, expected {FORMAT}")
        if not math.isfinite(state.blocked_until) or state.blocked_until > now + MAX_BLOCK_S:
            raise _Corrupt(f"impossible blocked_until {state.blocked_until}")
        for grants in state.windows.values():
            if any(not math.isfinite(t) or w < 0 for t, w in grants):
                raise _Corrupt("impossible grant")
        return state

    def _run(self, change: Callable[[_State], float | None], now: float) -> float | None:
        """:meth:`_update`, with the fallbacks: a lock held too long by another process
        lets this request through on the local budget alone, an unusable file for good."""
        if not self.usable:
            return None
        try:
            result = self._update(change, now)
        except BlockingIOError:
            if self._busy_since is None:
                self._busy_since = now
            if now - self._busy_since < LOCK_PATIENCE_S:
                return _RETRY_S
            self._busy_since = None
            self._problem(f"locked by another process for over {LOCK_PATIENCE_S:.0f}s; "
                          "this request goes on this process's budget alone")
            return None
        except OSError as exc:
            self._give_up(f"cannot use it: {exc.strerror or exc}")
            return None
        self._busy_since = None
        return result

    # -- what budgets ask -------------------------------------------------------------------
    def try_grant(self, window_s: float, limit: int, weight: int,
                  wall: Callable[[], float]) -> float | None:
        """Charge ``weight`` to the sliding ``window_s`` shared by every process if it fits
        under ``limit`` (a request heavier than the whole limit only into an empty window) and
        no block is active: None. Otherwise nothing is charged and the answer is the seconds
        to wait before asking again.

        The time is read from ``wall`` once the lock is held: a time read before could be
        older than a grant another process wrote meanwhile, and appending it would put two
        grants closer together than they really are."""
        key = repr(float(window_s))
        bucket = window_s / BUCKETS_PER_WINDOW

        def change(state: _State) -> float | None:
            now = wall()
            for name, grants in list(state.windows.items()):
                try:
                    length = float(name)
                except ValueError:
                    length = math.nan  # a key we never write: dropped
                # a grant further ahead than one window was written before the host's clock
                # stepped back: kept, it would stall every process until the clock caught up
                kept = [g for g in grants if now - length < g[0] <= now + length]
                if kept:
                    state.windows[name] = kept
                else:
                    del state.windows[name]
            if now < state.blocked_until:
                return state.blocked_until - now
            grants = state.windows.get(key, [])
            used = sum(w for _, w in grants)
            if used + weight <= limit or used == 0:
                at = math.ceil(now / bucket) * bucket
                if grants and grants[-1][0] == at:
                    grants[-1] = (at, grants[-1][1] + weight)
                else:
                    grants.append((at, weight))
                state.windows[key] = grants
                self.last_grant_at = now
                return None
            need = used + weight - limit
            until = now
            for granted_at, w in sorted(grants):
                need -= w
                until = granted_at
                if need <= 0:
                    break
            return max(until + window_s - now, 0.0) + 0.001

        return self._run(change, wall())

    def block(self, deadline: float, now: float) -> None:
        """Make every process wait until ``deadline`` (wall time; a later deadline wins).
        Called from synchronous code: a lock held by another process is waited for a few
        milliseconds at most (it is held for microseconds), then this process's own block
        has to do."""
        def change(state: _State) -> None:
            state.blocked_until = max(state.blocked_until, deadline)

        for _ in range(50):
            if self._run(change, now) is None:
                return
            time.sleep(0.001)
        self._problem("locked by another process; the block stays this process's own")


#: how soon a process asks again while another one holds the lock
_RETRY_S = 0.002


def sweep_stale(directory: Path, now: float, *, keep: Path) -> int:
    """Remove the ledgers in ``directory`` (other than ``keep``) not written for
    :data:`STALE_AFTER_S` that hold nothing live: no grant within its window, no block ahead.
    Each is checked and removed under its lock; one that is locked, unreadable or live is left
    alone. Never raises: a sweep that fails changes nothing. Returns how many were removed."""
    removed = 0
    try:
        names = [e for _, e in zip(range(SWEEP_LIMIT), os.scandir(directory), strict=False)
                 if e.name.endswith(".budget") and e.name != keep.name]
    except OSError:
        return 0
    for entry in names:
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                continue
            removed += _remove_if_idle(Path(entry.path), now)
        except (OSError, ValueError):  # in use, vanished, a window name we never write
            continue
    return removed


def _remove_if_idle(path: Path, now: float) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: in use, left alone
        if now - os.fstat(fd).st_mtime < STALE_AFTER_S:
            return 0  # written since it was listed
        try:
            state = SharedLedger._decode(os.pread(fd, MAX_BYTES, 0), now)
        except _Corrupt:
            return 0  # not ours to judge: its next user starts it afresh
        if state.blocked_until > now or any(
                now - float(name) < t for name, grants in state.windows.items()
                for t, _ in grants):
            return 0
        path.unlink()
        return 1
    finally:
        os.close(fd)

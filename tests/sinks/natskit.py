"""Helpers for the NATS tests (imported by name: pytest puts this folder on sys.path): read a
stream's messages back with a plain nats-py client, independent of the code under test, and a
server that requires a password."""

from __future__ import annotations

import subprocess

import nats
import nats.js.errors
from nats.js import api

from servers import NatsServer, wait_port


async def stream_messages(url: str, stream: str = "CANDLES") -> list[api.RawStreamMsg]:
    """Every message stored in ``stream``, in sequence order."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out: list[api.RawStreamMsg] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                out.append(await js.get_msg(stream, seq))
            except nats.js.errors.NotFoundError:  # deleted/aged out
                continue
        return out
    finally:
        await nc.close()


def msg_ids(msgs: list[api.RawStreamMsg]) -> list[str]:
    return [(m.headers or {}).get("Nats-Msg-Id", "") for m in msgs]


class AuthNatsServer(NatsServer):
    """A throwaway nats-server with JetStream that requires ``user``/``password``."""

    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        self.user = user
        self.password = password

    def start(self) -> None:
        log = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen([self.binary, "-a", "127.0.0.1", "-p", str(self.port),
                                      "-js", "-sd", str(self.dir / "store"),
                                      "--user", self.user, "--pass", self.password],
                                     stdout=log, stderr=log)
        wait_port(self.port)

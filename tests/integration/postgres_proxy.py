"""A unix-socket proxy in front of a real PostgreSQL server, for the network's faults: a connection cut at a
given moment, or a server that stops answering while its connections stay open."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


class PostgresProxy:
    """``async with PostgresProxy(url) as proxy:`` connect to ``proxy.url`` instead of ``url`` (a unix-socket
    URL, as the embedded server's). ``cut_on``: a connection is closed when the client sends these bytes
    (``cuts`` counts it). ``freeze()`` stops every byte, both ways, until ``thaw()``."""

    def __init__(self, url: str, cut_on: bytes | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ia-proxy-"))  # short: a socket path has at most 107 bytes
        query = parse_qs(urlsplit(url).query)
        host, port = query["host"][0], query["port"][0]
        self.upstream = f"{host}/.s.PGSQL.{port}"
        self.url = url.replace(f"host={host}", f"host={self.folder}")
        self.socket = self.folder / f".s.PGSQL.{port}"
        self.cut_on = cut_on
        self.cuts = 0
        self._flowing = asyncio.Event()
        self._flowing.set()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def __aenter__(self) -> PostgresProxy:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.socket))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        server_reader, server_writer = await asyncio.open_unix_connection(self.upstream)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_client: bool) -> None:
            try:
                while data := await reader.read(65536):
                    await self._flowing.wait()
                    if from_client and self.cut_on is not None and self.cut_on in data:
                        self.cuts += 1
                        break
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                client_writer.close()
                server_writer.close()

        await asyncio.gather(pipe(client_reader, server_writer, True), pipe(server_reader, client_writer, False))

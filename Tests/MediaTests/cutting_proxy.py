#!/usr/bin/env python3
"""A TCP forwarder that plays a storage server dying mid-upload: listen on 127.0.0.1 (a free port, printed on
stdout once ready), forward to 127.0.0.1:TARGET, and once LIMIT bytes have gone from clients to the server,
drop every connection and refuse new ones."""
import asyncio
import sys


async def main():
    target, limit = int(sys.argv[1]), int(sys.argv[2])
    sent = 0
    writers = []
    dead = asyncio.Event()

    async def pipe(reader, writer, counted):
        nonlocal sent
        try:
            while not dead.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                if counted:
                    sent += len(data)
                    if sent > limit:
                        dead.set()
                        for w in writers:
                            w.transport.abort()
                        break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        if dead.is_set():
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close()
            return
        writers.extend([client_writer, server_writer])
        await asyncio.gather(pipe(client_reader, server_writer, True), pipe(server_reader, client_writer, False))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())

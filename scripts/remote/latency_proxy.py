"""A TCP proxy that adds network latency, for measuring the remote tier at real round-trip
times on a machine whose kernel has no netem qdisc (tc netem answers "qdisc kind is unknown").

    python3 latency_proxy.py PORT UPSTREAM_HOST UPSTREAM_PORT RTT_MS [JITTER_FRACTION] [LOSS]

Each direction holds every piece of data for RTT/2 (plus up to JITTER_FRACTION of that, at
random, never reordering a connection's bytes) before passing it on, so a request and its
reply cost one round trip, as over a real link; a new connection costs one more, as TCP's
handshake does. A LOSS fraction of the pieces is held longer, by TCP's minimum retransmission
timeout (200 ms) on top: what a lost segment costs a connection. Bandwidth is not limited.
"""
import asyncio
import random
import sys
import time

port, host, upstream_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
one_way = float(sys.argv[4]) / 2000
jitter = float(sys.argv[5]) if len(sys.argv) > 5 else 0.1
loss = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0


async def pump(reader, writer):
    queue = asyncio.Queue()
    last = 0.0

    async def deliver():
        while True:
            due, data = await queue.get()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if data is None:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            due = time.monotonic() + one_way * (1 + random.random() * jitter)
            if data and random.random() < loss:
                due += 0.2
            last = due = max(due, last)  # a connection's bytes stay in order
            await queue.put((due, data or None))
            if not data:
                break
    except ConnectionError:
        await queue.put((0, None))
    await task


async def handle(client_reader, client_writer):
    await asyncio.sleep(one_way * 2)  # the TCP handshake's round trip
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, upstream_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, upstream_writer), pump(upstream_reader, client_writer), return_exceptions=True)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


asyncio.run(main())

"""The load generator of ``bench/fanout.py``: opens SSE connections and measures
what arrives.

    python bench/fanout_load.py --port P --ids ID,ID,... --viewers 10 --window A B

Opens ``--viewers`` connections per session id (at most ``--connect-rate`` new
ones a second), reads every stream until ``B``, and prints one JSON line: how
many connected, how many timestamped changes (``t=<seconds>`` in a payload)
arrived inside the window ``[A, B)``, the lag of each (arrival minus the time
written into it, in ms, sampled), and the mean bytes per message.

Parsing is minimal (it shares the machine with the server): a regular
expression over each received chunk, with the tail of the previous chunk kept
so a timestamp split between two reads is still found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import time

STAMP = re.compile(rb"t=(\d{10}\.\d{6})")
#: A timestamp is at most this long: keep that much of a chunk for the next read.
TAIL = 20


class Totals:
    def __init__(self, window: tuple[float, float]) -> None:
        self.window = window
        self.connected = 0
        self.failed = 0
        self.changes = 0
        self.lags: list[float] = []
        self.bytes = 0
        self.messages = 0


async def view(port: int, path: str, totals: Totals, until: float) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        totals.failed += 1
        return
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    start, end = totals.window
    tail = b""
    headers = True
    try:
        while True:
            remaining = until - time.time()
            if remaining <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), remaining)
            except TimeoutError:
                break
            if not chunk:
                break
            now = time.time()
            if headers:
                if b" 200 " not in chunk.split(b"\r\n", 1)[0]:
                    totals.failed += 1
                    return
                headers = False
                totals.connected += 1
            data = tail + chunk
            tail = data[-TAIL:]
            if start <= now < end:
                totals.bytes += len(chunk)
                totals.messages += chunk.count(b"\n\n")
            for match in STAMP.finditer(data, 0):
                # A stamp that ends inside the kept tail was counted last time.
                if match.end() <= TAIL and len(data) > len(chunk):
                    continue
                if start <= now < end:
                    totals.changes += 1
                    totals.lags.append((now - float(match.group(1))) * 1000)
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> Totals:
    totals = Totals((args.window[0], args.window[1]))
    ids = args.ids.split(",")
    paths = [f"/progress/{sid}/events/" for sid in ids for _ in range(args.viewers)]
    tasks = []
    interval = 1.0 / args.connect_rate
    for path in paths:
        tasks.append(asyncio.create_task(view(args.port, path, totals, args.window[1])))
        await asyncio.sleep(interval)
    await asyncio.gather(*tasks)
    return totals


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--connect-rate", type=float, default=1000.0)
    parser.add_argument("--window", type=float, nargs=2, required=True)
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        from uvloop import new_event_loop
    except ImportError:
        from asyncio import new_event_loop
    result = asyncio.run(main(arguments), loop_factory=new_event_loop)
    lags = sorted(result.lags)
    step = max(1, len(lags) // 20000)  # a sample is enough for percentiles
    print(
        json.dumps(
            {
                "connected": result.connected,
                "failed": result.failed,
                "changes": result.changes,
                "lags": lags[::step],
                "bytes_per_message": result.bytes / result.messages if result.messages else 0,
            }
        ),
        flush=True,
    )

#!/usr/bin/env python3
"""Data generator for the demo: writes hashes through keyway with several
pipelined redis-py clients (RESP3, redis-py 8's default)."""
import argparse
import threading

import redis


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=6380)
    ap.add_argument("--count", type=int, default=60000)
    ap.add_argument("--pattern", default="user:{i}", help="key pattern; {i} is the number")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--pipeline", type=int, default=500)
    a = ap.parse_args()
    errors = []

    def worker(w):
        r = redis.Redis(port=a.port)
        pipe = r.pipeline(transaction=False)
        for i in range(w, a.count, a.clients):
            key = a.pattern.replace("{i}", str(i))
            pipe.hset(key, mapping={"name": f"user {i}", "email": f"user{i}@example.com", "visits": i % 97})
            if len(pipe) >= a.pipeline:
                errors.extend(x for x in pipe.execute(raise_on_error=False) if isinstance(x, Exception))
        errors.extend(x for x in pipe.execute(raise_on_error=False) if isinstance(x, Exception))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} errors, first: {errors[0]}")
    print(f"wrote {a.count} hashes ({a.pattern}) with {a.clients} pipelined clients")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A faultline exec client for Redis with replicas, standard library only (RESP over a socket).

    faultline run --target 'exec:python3 examples/clients/redis_client.py' \
        --nodes-addr 127.0.0.1:6379,127.0.0.1:6380,127.0.0.1:6381 --set read=replica

The first node is the primary, the others its replicas. Writes (SET) and cas (a Lua script)
go to the primary; reads (GET) go where the `read` setting says:

    read=primary       from the primary
    read=replica       from a replica (the one this client's number picks)
    read=replica-wait  from a replica, and every write waits for `WAIT 1 0` (one replica has it)

Values are JSON text; a missing key reads as null. Keys are prefixed with the run's name
(FAULTLINE_RUN), so a second run does not read what the first one wrote.
"""

import json
import os
import socket
import sys

CAS = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == 'null') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class Redis:
    """One connection speaking RESP."""

    def __init__(self, host_port, timeout):
        host, port = host_port.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))
        return self.reply()

    def reply(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError("unexpected reply %r" % line)


class RedisError(Exception):
    """An error reply: Redis refused the command, so it did not happen."""


def main():
    hosts = os.environ["FAULTLINE_HOSTS"].split()
    client = int(os.environ.get("FAULTLINE_CLIENT", "0"))
    read_from = os.environ.get("FAULTLINE_SET_READ", "primary")
    timeout = int(os.environ.get("FAULTLINE_OP_TIMEOUT_MS", "1000")) / 1000
    if read_from not in ("primary", "replica", "replica-wait"):
        sys.exit("read=%s: expected primary, replica or replica-wait" % read_from)
    replicas = hosts[1:] or hosts
    reader_at = hosts[0] if read_from == "primary" else replicas[client % len(replicas)]
    conns = {}

    def conn(host):
        if host not in conns:
            conns[host] = Redis(host, timeout)
        return conns[host]

    prefix = os.environ.get("FAULTLINE_RUN", "")

    def run(op):
        f, key, value = op["f"], "%s/%s" % (prefix, op.get("key")), op.get("value")
        if f == "read":
            got = conn(reader_at).call("GET", key)
            return {"type": "ok", "value": None if got is None else json.loads(got)}
        if f == "write":
            conn(hosts[0]).call("SET", key, json.dumps(value))
            if read_from == "replica-wait":
                conn(hosts[0]).call("WAIT", 1, 0)
            return {"type": "ok"}
        if f == "cas":
            expect, new = value
            done = conn(hosts[0]).call("EVAL", CAS, 1, key, json.dumps(expect), json.dumps(new))
            if read_from == "replica-wait":
                conn(hosts[0]).call("WAIT", 1, 0)
            return {"type": "ok"} if done == 1 else {"type": "fail", "error": "mismatch"}
        return {"type": "fail", "error": "no %s here" % f}

    print(json.dumps({"type": "hello", "ops": ["read", "write", "cas"]}), flush=True)
    for line in sys.stdin:
        op = json.loads(line)
        try:
            answer = run(op)
        except RedisError as e:
            answer = {"type": "fail", "error": str(e)}
        except (ConnectionRefusedError, socket.gaierror) as e:
            answer = {"type": "fail", "error": "not sent: %s" % e}
        except OSError as e:
            # Sent, but the answer was lost: it may have happened. Reconnect next time.
            conns.clear()
            answer = {"type": "info", "error": str(e) or type(e).__name__}
        answer["id"] = op["id"]
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()

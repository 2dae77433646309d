#!/usr/bin/env python3
"""Maelstrom's g-counter on the seq-kv service: each node keeps its own count under its own
key; a read first writes its own key (which brings it to seq-kv's newest state: seq-kv may
serve a client a past state, but never one older than its own last write), then sums every
node's key."""
import threading

from node import Node

node = Node()
lock = threading.Lock()
count = [0]


def kv(body):
    while True:
        answer = node.rpc("seq-kv", body, timeout=1.0)
        if answer is not None:
            return answer


@node.handler("add")
def add(req):
    with lock:
        count[0] += req["body"]["delta"]
        mine = count[0]
        # Writes of our own key are in order: the lock is held until seq-kv took it.
        kv({"type": "write", "key": node.node_id, "value": mine})
    node.reply(req, {"type": "add_ok"})


@node.handler("read")
def read(req):
    with lock:
        kv({"type": "write", "key": node.node_id, "value": count[0]})
    total = 0
    for peer in node.node_ids:
        answer = kv({"type": "read", "key": peer})
        if answer.get("type") == "read_ok":
            total += answer["value"]
    node.reply(req, {"type": "read_ok", "value": total})


node.run()

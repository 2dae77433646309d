#!/usr/bin/env python3
"""A lin-kv store that forwards every request to one leader (n1), without consensus: right
while the network is whole, wrong under partitions. The leader tells the others of each
write; a follower that cannot reach the leader within 300 ms answers a read from what it was
told — a stale read, not linearizable — and a write with an indefinite timeout (error 0)."""
import threading

from node import Node

node = Node()
lock = threading.Lock()
store = {}   # the leader's data, and each follower's copy of what the leader told it
LEADER = "n1"


def apply(body):
    key = str(body.get("key"))
    kind = body["type"]
    with lock:
        if kind == "read":
            if key not in store:
                return {"type": "error", "code": 20, "text": "no such key"}
            return {"type": "read_ok", "value": store[key]}
        if kind == "write":
            store[key] = body["value"]
            return {"type": "write_ok"}
        if key not in store:
            return {"type": "error", "code": 20, "text": "no such key"}
        if store[key] != body["from"]:
            return {"type": "error", "code": 22, "text": "expected %r" % (body["from"],)}
        store[key] = body["to"]
        return {"type": "cas_ok"}


def serve(req):
    body = req["body"]
    if node.node_id == LEADER:
        answer = apply(body)
        if answer["type"] in ("write_ok", "cas_ok"):
            value = body["value"] if body["type"] == "write" else body["to"]
            for peer in node.node_ids:
                if peer != LEADER:
                    node.send(peer, {"type": "replicate", "key": str(body["key"]), "value": value})
        node.reply(req, answer)
        return
    request = {k: v for k, v in body.items() if k != "msg_id"}
    answer = node.rpc(LEADER, request, timeout=0.3)
    if answer is None:
        if body["type"] == "read":
            answer = apply(body)  # stale, from what the leader told us
        else:
            answer = {"type": "error", "code": 0, "text": "the leader did not answer"}
    answer = {k: v for k, v in answer.items() if k not in ("msg_id", "in_reply_to")}
    node.reply(req, answer)


for kind in ("read", "write", "cas"):
    node.handler(kind)(serve)


@node.handler("replicate")
def replicate(req):
    with lock:
        store[req["body"]["key"]] = req["body"]["value"]


node.run()

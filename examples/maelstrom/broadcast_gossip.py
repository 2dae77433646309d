#!/usr/bin/env python3
"""Maelstrom's broadcast, done right: every few hundred milliseconds each node sends each
neighbour the messages that neighbour has not acknowledged, until it does. A node that
starts (again, after a kill: its memory is gone) asks its neighbours to send it everything."""
import threading

from node import Node

node = Node()
lock = threading.Lock()
messages = set()
neighbours = []
known = {}  # neighbour -> the messages it has acknowledged or sent us


def add(ms, source=None):
    with lock:
        messages.update(ms)
        if source is not None:
            known.setdefault(source, set()).update(ms)


@node.handler("topology")
def topology(req):
    with lock:
        neighbours[:] = req["body"]["topology"].get(node.node_id, [])
    node.reply(req, {"type": "topology_ok"})
    for peer in list(neighbours):
        node.send(peer, {"type": "resync"})


@node.handler("resync")
def resync(req):
    with lock:
        known[req["src"]] = set()


@node.handler("broadcast")
def broadcast(req):
    add([req["body"]["message"]])
    node.reply(req, {"type": "broadcast_ok"})


@node.handler("gossip")
def gossip(req):
    add(req["body"]["messages"], source=req["src"])
    node.reply(req, {"type": "gossip_ok", "messages": req["body"]["messages"]})


@node.handler("read")
def read(req):
    with lock:
        seen = sorted(messages)
    node.reply(req, {"type": "read_ok", "messages": seen})


def send_unacknowledged():
    with lock:
        todo = {peer: sorted(messages - known.get(peer, set())) for peer in neighbours}
    for peer, ms in todo.items():
        if ms:
            threading.Thread(target=push, args=(peer, ms), daemon=True).start()


def push(peer, ms):
    answer = node.rpc(peer, {"type": "gossip", "messages": ms}, timeout=1.0)
    if answer is not None and answer.get("type") == "gossip_ok":
        with lock:
            known.setdefault(peer, set()).update(answer["messages"])


node.every(0.2, send_unacknowledged)
node.run()

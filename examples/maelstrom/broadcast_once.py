#!/usr/bin/env python3
"""Maelstrom's broadcast, done wrong on purpose: each new message is sent to the neighbours
once, with no acknowledgement and no retry. Without faults every node gets everything;
a partition loses what was sent across it, for good."""
import threading

from node import Node

node = Node()
lock = threading.Lock()
messages = set()
neighbours = []


@node.handler("topology")
def topology(req):
    neighbours[:] = req["body"]["topology"].get(node.node_id, [])
    node.reply(req, {"type": "topology_ok"})


@node.handler("broadcast")
def broadcast(req):
    m = req["body"]["message"]
    with lock:
        new = m not in messages
        messages.add(m)
    if new:
        for peer in neighbours:
            if peer != req["src"]:
                node.send(peer, {"type": "broadcast", "message": m})
    if "msg_id" in req["body"]:
        node.reply(req, {"type": "broadcast_ok"})


@node.handler("read")
def read(req):
    with lock:
        seen = sorted(messages)
    node.reply(req, {"type": "read_ok", "messages": seen})


node.run()

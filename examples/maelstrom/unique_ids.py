#!/usr/bin/env python3
"""Maelstrom's unique-ids: the node's id and a counter of its own make every id unique."""
import threading

from node import Node

node = Node()
lock = threading.Lock()
count = [0]


@node.handler("generate")
def generate(req):
    with lock:
        count[0] += 1
        n = count[0]
    node.reply(req, {"type": "generate_ok", "id": f"{node.node_id}-{n}"})


node.run()

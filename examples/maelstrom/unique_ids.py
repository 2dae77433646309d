#!/usr/bin/env python3
"""Maelstrom's unique-ids: the node's id, the time it started and a counter make every id
unique — also across a restart, which empties the counter."""
import threading
import time

from node import Node

node = Node()
lock = threading.Lock()
count = [0]
started = time.time_ns()


@node.handler("generate")
def generate(req):
    with lock:
        count[0] += 1
        n = count[0]
    node.reply(req, {"type": "generate_ok", "id": f"{node.node_id}-{started}-{n}"})


node.run()

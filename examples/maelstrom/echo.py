#!/usr/bin/env python3
"""Maelstrom's echo: answers every `echo` with the same payload."""
from node import Node

node = Node()


@node.handler("echo")
def echo(req):
    node.reply(req, {"type": "echo_ok", "echo": req["body"]["echo"]})


node.run()

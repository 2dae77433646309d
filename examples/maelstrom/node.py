"""A small Maelstrom node library, standard library only: JSON messages on stdin/stdout,
init handled, handlers run on their own threads, blocking RPCs with a timeout.

    node = Node()
    @node.handler("echo")
    def echo(req):
        node.reply(req, {"type": "echo_ok", "echo": req["body"]["echo"]})
    node.run()
"""

import json
import sys
import threading


class Node:
    def __init__(self):
        self.node_id = None
        self.node_ids = []
        self.handlers = {}
        self.on_init = None
        self._lock = threading.Lock()
        self._out = threading.Lock()
        self._next_id = 0
        self._waiting = {}

    def handler(self, kind):
        def register(fn):
            self.handlers[kind] = fn
            return fn
        return register

    def log(self, *parts):
        print(*parts, file=sys.stderr, flush=True)

    def send(self, dest, body):
        line = json.dumps({"src": self.node_id, "dest": dest, "body": body})
        with self._out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def reply(self, req, body):
        body = dict(body)
        if "msg_id" in req["body"]:
            body["in_reply_to"] = req["body"]["msg_id"]
        self.send(req["src"], body)

    def rpc(self, dest, body, timeout=1.0):
        """Sends a request and waits for its reply body; None if none came in time."""
        with self._lock:
            self._next_id += 1
            msg_id = self._next_id
            done = threading.Event()
            self._waiting[msg_id] = [done, None]
        self.send(dest, dict(body, msg_id=msg_id))
        done.wait(timeout)
        with self._lock:
            return self._waiting.pop(msg_id)[1]

    def _dispatch(self, msg):
        body = msg["body"]
        if "in_reply_to" in body:
            with self._lock:
                slot = self._waiting.get(body["in_reply_to"])
                if slot is not None:
                    slot[1] = body
                    slot[0].set()
            return
        if body["type"] == "init":
            self.node_id = body["node_id"]
            self.node_ids = body["node_ids"]
            if self.on_init:
                self.on_init()
            self.reply(msg, {"type": "init_ok"})
            return
        fn = self.handlers.get(body["type"])
        if fn is None:
            self.reply(msg, {"type": "error", "code": 10, "text": "not supported: " + body["type"]})
            return
        threading.Thread(target=fn, args=(msg,), daemon=True).start()

    def every(self, seconds, fn):
        """Runs fn every `seconds` on a thread of its own."""
        def loop():
            while True:
                threading.Event().wait(seconds)
                fn()
        threading.Thread(target=loop, daemon=True).start()

    def run(self):
        for line in sys.stdin:
            if line.strip():
                self._dispatch(json.loads(line))

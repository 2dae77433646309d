#!/usr/bin/env python3
"""A faultline exec client that answers every operation ok at once, touching no system: what
faultline's side of the protocol costs (reads return null, so verdicts mean nothing here).

    faultline run --target 'exec:python3 examples/clients/null_client.py' --workload register \
        --rate 0 --time-limit 10s --nemesis none
"""

import json
import sys

print('{"type":"hello","ops":["read","write","cas"]}', flush=True)
for line in sys.stdin:
    sys.stdout.write('{"id":%d,"type":"ok","value":null}\n' % json.loads(line)["id"])
    sys.stdout.flush()

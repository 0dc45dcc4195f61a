"""Container healthcheck: ``python docker/rpc_ping.py auth`` exits 0 when the
service answers its ``ping`` RPC within five seconds.

RPC goes to the service's shared queue, so for a scaled service this says
that some instance answers, which is what callers that wait on it need.
"""

from __future__ import annotations

import os
import sys

from nameko.standalone.rpc import ClusterRpcProxy


def main(service: str) -> int:
    config = {"AMQP_URI": os.environ["AMQP_URI"], "serializer": "json"}
    try:
        with ClusterRpcProxy(config, timeout=5) as cluster:
            getattr(cluster, service).ping()
    except Exception as error:  # noqa: BLE001 (any failure means "not healthy")
        print(f"{service} did not answer ping: {error!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

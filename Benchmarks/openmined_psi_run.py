"""One openmined-psi (ECDH-PSI on P-256) run at a given set size, in this process.

Both sides run here (server setup, client request, server response, client intersection), with
`reveal_intersection=True` and the RAW setup structure, so the intersection is exact like ours.
The items are the same emails `cleanroom-bench` generates (people size/2 ..< size in both sets).
Prints one JSON line: size, seconds and CPU seconds (protocol only, data generation excluded),
peak RSS of this process (ru_maxrss, KiB) and the intersection size. openmined-psi runs on one
thread, so its CPU seconds are its wall time on an idle machine.
"""
import json
import resource
import sys
import time

import private_set_intersection.python as psi


def main() -> None:
    n = int(sys.argv[1])
    server_items = [f"user{i}@example.com" for i in range(n)]
    client_items = [f"user{i}@example.com" for i in range(n // 2, n // 2 + n)]
    t0, c0 = time.perf_counter(), time.process_time()
    server = psi.server.CreateWithNewKey(True)
    client = psi.client.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(0.0, len(client_items), server_items, psi.DataStructure.RAW)
    request = client.CreateRequest(client_items)
    response = server.ProcessRequest(request)
    intersection = client.GetIntersection(setup, response)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"size": n, "seconds": seconds, "cpuSeconds": cpu, "peakRSSKiB": peak, "intersection": len(intersection),
                      "version": psi.__version__}))


if __name__ == "__main__":
    main()

#!/bin/sh
# ValidateService: runs once the batch's instances are healthy ($SHIPLINE_PORTS lists their
# ports); a non-zero exit fails the batch and rolls the deployment back.
exec python3 - "$SHIPLINE_RELEASE_VERSION" $SHIPLINE_PORTS <<'PY'
import json, sys, urllib.request
expected, ports = sys.argv[1], sys.argv[2:]
for port in ports:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as response:
        version = json.load(response)["version"]
    if version != expected:
        sys.exit(f"instance on port {port} reports {version}, expected {expected}")
print(f"{len(ports)} instance(s) report {expected}")
PY

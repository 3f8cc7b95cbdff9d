#!/usr/bin/env bash
# Optional system package: CP2K (Debian's cp2k 2023.1 + data), only needed to re-run the force-unit
# check of docs/data.md (a single point on frame 0; ~8 minutes on 2 cores). Run as root.
set -euo pipefail
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y cp2k cp2k-data

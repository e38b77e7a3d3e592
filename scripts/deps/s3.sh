#!/usr/bin/env bash
# The S3 server the tests run against: Debian's Ceph radosgw (scripts/test.sh starts a throwaway single-node Ceph
# from these binaries: one monitor, one memstore OSD, radosgw on loopback). Idempotent: installs the Debian packages
# only when a binary is missing.
set -euo pipefail

missing=""
for bin in radosgw ceph-mon ceph-osd ceph ceph-authtool monmaptool radosgw-admin; do
  command -v "$bin" >/dev/null 2>&1 || missing="$missing $bin"
done
if [ -z "$missing" ]; then
  echo "s3 deps: radosgw, ceph-mon, ceph-osd and ceph-common present"
  exit 0
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
echo "s3 deps: installing radosgw ceph-mon ceph-osd ceph-common (missing:$missing)"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends radosgw ceph-mon ceph-osd ceph-common

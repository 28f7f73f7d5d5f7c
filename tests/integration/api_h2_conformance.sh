#!/usr/bin/env bash
# RFC 9113 conformance of the h2c error paths (GOAWAY / RST_STREAM codes,
# SETTINGS, PING, WINDOW_UPDATE, flow control, header validation), with a
# scripted raw client: tests/integration/api_h2_conformance.py.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"

/usr/bin/python3 -c 'import hpack, hyperframe' 2>/dev/null ||
    skip_all "python3-h2 (hpack, hyperframe) is not installed"
if ! start_registry h2conf REFRESH_INTERVAL_SEC=3600; then
    ok 1 "registry started"; done_testing; exit 1
fi
/usr/bin/python3 "$SR_SRCDIR/tests/integration/api_h2_conformance.py" "$REG_PORT"

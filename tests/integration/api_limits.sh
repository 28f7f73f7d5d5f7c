#!/usr/bin/env bash
# Limits against the real binary: 1000 concurrent connections all answered,
# a slowloris client dropped at the header timeout while others are served,
# oversized heads refused (414/431), clients that never read cannot grow the
# server's memory, and connections over API_MAX_CONNECTIONS refused cleanly.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"
CLIENTS="$SR_SRCDIR/tests/integration/api_clients.py"
# client MODE ARGS...: runs one raw client; its JSON report in $out (and the log).
client() { out=$(/usr/bin/python3 "$CLIENTS" "$@"); diag "$out"; }
/usr/bin/python3 -c 'import hpack, hyperframe' 2>/dev/null ||
    skip_all "python3-h2 (hpack, hyperframe) is not installed"
ulimit -n 4096 2>/dev/null

start_registry limits REFRESH_INTERVAL_SEC=3600 API_THREADS=2 API_MAX_CONNECTIONS=1100 \
    API_HEADER_TIMEOUT_SEC=2 API_IDLE_TIMEOUT_SEC=30 API_MAX_HEADER_BYTES=8192 \
    API_MAX_REQUEST_LINE=1024
ok $? "registry started"
grep -q "2 thread(s), max 1100 connections, 100 streams each, idle 30 s, header 2 s" "$REG_LOG"
ok $? "the API_* settings reach the server (startup line: $(grep -o -m1 'listening on.*' "$REG_LOG"))"
URL="http://127.0.0.1:$REG_PORT"

out=$(/usr/bin/python3 "$CLIENTS" concurrent "$REG_PORT" 1000)
is "$(jq .answered_200 <<<"$out")" 1000 "1000 concurrent connections (500 HTTP/1.1, 500 h2c): all answered 200"
diag "$out"

client slowloris "$REG_PORT"
jq -e '.dropped_after != null and .dropped_after >= 1.5 and .dropped_after < 4' <<<"$out" >/dev/null
ok $? "slowloris: dropped ~2 s (API_HEADER_TIMEOUT_SEC) after its first byte"
is "$(jq -r .status <<<"$out")" 408 "slowloris: told 408 Request Timeout"
jq -e '.normal_served >= 5' <<<"$out" >/dev/null
ok $? "slowloris: a normal client is served all along"

client lingerer "$REG_PORT"
is "$(jq -r .status <<<"$out")" 400 "a bad request: 400, then the server closes"
jq -e '.closed_after != null and .closed_after < 8' <<<"$out" >/dev/null
ok $? "a client that keeps sending after it: closed within the 5 s lingering bound"

client halfclose "$REG_PORT"
jq -e '(.status == 200 or .status == 503) and .end_stream and .closed' <<<"$out" >/dev/null
ok $? "h2 client half-closes right after POST /cache/refresh: still answered, then closed"
client halfclose_big "$REG_PORT" 20
jq -e '.complete == 20' <<<"$out" >/dev/null
ok $? "h2 client half-closes behind 20 answers of ~20 KB: all arrive whole, then the close"

client halfclose_nowindow "$REG_PORT"
jq -e '.closed_after != null and .closed_after < 1' <<<"$out" >/dev/null
ok $? "h2 client with window 0 half-closes: nothing can move any more, closed at once (not after API_IDLE_TIMEOUT_SEC)"

big=$(head -c 9000 /dev/zero | tr '\0' a)
req --http1.1 -H "X-Big: $big" "$URL/health"
is "$HTTP_STATUS" 431 "HTTP/1.1 header section over API_MAX_HEADER_BYTES: 431"
req --http1.1 "$URL/services?x=$(head -c 1100 /dev/zero | tr '\0' b)"
is "$HTTP_STATUS" 414 "HTTP/1.1 request line over API_MAX_REQUEST_LINE: 414"
req --http2-prior-knowledge -H "X-Big: $big" "$URL/health"
is "$HTTP_STATUS" 431 "h2 header list over API_MAX_HEADER_BYTES: 431"
req --http2-prior-knowledge "$URL/services?x=$(head -c 1100 /dev/zero | tr '\0' b)"
is "$HTTP_STATUS" 414 "h2 :path over API_MAX_REQUEST_LINE: 414"
grep -qi '^etag: "v[0-9]*-[0-9a-f]*"' "$SR_TMP/headers"; ok $? "... with an ETag, as every JSON answer"
client continuations "$REG_PORT" 20000 100
is "$(jq .goaway <<<"$out")" 11 "h2 header block in 200 CONTINUATION frames: GOAWAY ENHANCE_YOUR_CALM"

for proto in h1 h2; do
    client nonreading "$REG_PORT" "$REG_PID" "$proto"
    if grep -q libasan "/proc/$REG_PID/maps"; then
        # ASan keeps freed memory in quarantine (up to 256 MB): RSS says nothing.
        skip "$proto client that never reads: server RSS grows < 20 MB" "ASan build"
    else
        jq -e '(.rss_after_kb - .rss_before_kb) < 20480' <<<"$out" >/dev/null
        ok $? "$proto client that never reads: server RSS grows < 20 MB"
    fi
    is "$(jq .others_served <<<"$out")" true "$proto client that never reads: others still served"
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$REG_PID/status")
diag "peak RSS of the registry so far: $hwm kB"

# An h2 client that never opens its flow-control window is closed after
# API_IDLE_TIMEOUT_SEC like one that stops reading, PINGs or not.
start_registry stall REFRESH_INTERVAL_SEC=3600 API_IDLE_TIMEOUT_SEC=2 API_MAX_HEADER_BYTES=262144
client zerowindow "$REG_PORT"
jq -e '.headers and .data_bytes == 0' <<<"$out" >/dev/null
ok $? "h2 window 0: the response HEADERS arrive, no DATA"
# (The PINGs keep the connection itself alive; its waiting response is
# what must not be held: reset, or the connection closed with GOAWAY.)
jq -e '((.rst == 8 and .rst_after >= 1.5 and .rst_after < 6) or
        (.goaway_after != null and .goaway_after >= 1.5 and .goaway_after < 6 and .closed_after != null))' \
    <<<"$out" >/dev/null
ok $? "h2 window 0, no WINDOW_UPDATE, PINGs: the response given up after API_IDLE_TIMEOUT_SEC (2 s)"
# One stream kept without a window while others keep the connection busy:
# that stream is reset after API_IDLE_TIMEOUT_SEC, the connection lives on.
client stalledstream "$REG_PORT" 10
jq -e '.rst1 == 8 and .rst1_after >= 1.5 and .rst1_after < 5 and .goaway == null and .answered >= 3' \
    <<<"$out" >/dev/null
ok $? "h2 stream never given a window on a busy connection: RST_STREAM CANCEL after ~2 s, others served"

# Debian's nghttp2 allows 8 CONTINUATION frames unless told more: a
# 200 KB header list in full frames fits API_MAX_HEADER_BYTES=256 KiB.
client continuations "$REG_PORT" 200000 16384
is "$(jq .status <<<"$out")" 200 "h2 200 KB header list in 13 frames, API_MAX_HEADER_BYTES=262144: answered"

# Content is not part of the head: a busy h2 connection whose requests all
# carry content outlives API_HEADER_TIMEOUT_SEC; content that stops gets
# API_IDLE_TIMEOUT_SEC from its last byte, and then only its own request ends.
start_registry bodies REFRESH_INTERVAL_SEC=3600 API_HEADER_TIMEOUT_SEC=1 API_IDLE_TIMEOUT_SEC=2
client h2slowhead "$REG_PORT" 6
jq -e '.goaway == 0 and .goaway_after >= 0.7 and .goaway_after < 2.5' <<<"$out" >/dev/null
ok $? "h2 slowloris (a header block in 1-byte CONTINUATIONs): GOAWAY ~1 s (API_HEADER_TIMEOUT_SEC) after it began"
client h2overlap "$REG_PORT" 3.5
jq -e '.goaway == null and .answered >= 12' <<<"$out" >/dev/null
ok $? "h2: a request with content always open for 3.5 s (header timeout 1 s): all answered, no GOAWAY"
client h2slowbody "$REG_PORT" 8
jq -e '.status3 == 408 and .status3_after >= 1.5 and .status3_after < 5 and .rst3 == 0' <<<"$out" >/dev/null
ok $? "h2: content stopped for API_IDLE_TIMEOUT_SEC (2 s): that stream gets 408, then RST_STREAM NO_ERROR"
jq -e '.cut1 == null and .status5 == 200' <<<"$out" >/dev/null
ok $? "h2: ... the event stream beside it goes on, and the connection serves new requests"
client h1slowbody "$REG_PORT" 8
jq -e '.statuses == [200] and .closed_after != null and .closed_after >= 1.5 and .closed_after < 5' \
    <<<"$out" >/dev/null
ok $? "HTTP/1.1: content stopped after its answer: no second (408) answer, closed after API_IDLE_TIMEOUT_SEC"
client h1twobodies "$REG_PORT" 8
jq -e '.statuses == [405, 405] and .closed_after != null and .closed_after >= 1.5 and .closed_after < 5' \
    <<<"$out" >/dev/null
ok $? "HTTP/1.1: a second request's content, the same length as the first's, gets its own API_IDLE_TIMEOUT_SEC"

# API_MAX_CONNECTIONS=3: three held, the fourth refused, one leaves, served again.
start_registry maxconn REFRESH_INTERVAL_SEC=3600 API_MAX_CONNECTIONS=3 API_IDLE_TIMEOUT_SEC=30
URL="http://127.0.0.1:$REG_PORT"
for fd in 7 8 9; do
    eval "exec $fd<>/dev/tcp/127.0.0.1/$REG_PORT"
    printf 'GET /health HTTP/1.1\r\nHost: t\r\n\r\n' >&$fd
done
req --http1.1 "$URL/health"
is "$HTTP_STATUS" 503 "4th HTTP/1.1 connection over API_MAX_CONNECTIONS=3: 503"
is "$(jq -r .error <<<"$BODY")" too_many_connections "... too_many_connections"
grep -qi '^connection: close' "$SR_TMP/headers"; ok $? "... with Connection: close"
grep -qi '^etag: "v[0-9]*-[0-9a-f]*"' "$SR_TMP/headers"; ok $? "... and an ETag, as every JSON answer"
curl -s --http2-prior-knowledge -o /dev/null "$URL/health"; rc=$?
[[ $rc != 0 ]]; ok $? "4th h2c connection: refused with GOAWAY (curl exit $rc)"
exec 7>&-
served() { [[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/services") == 200 ]]; }
poll_until 5 served; ok $? "one leaves: the next client is served"
exec 8>&- 9>&-
done_testing

#!/usr/bin/env bash
# HTTP semantics on the real swarm, over HTTP/1.1, h2c prior knowledge and
# HTTP/1.1 Upgrade: h2c (curl --http2): GET /services filters, ETag /
# If-None-Match -> 304, Date / Server / Cache-Control, the metrics and
# events endpoints, 404 / 405 + Allow / 413.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"

tag="t$$"
stack="${SR_PREFIX}stack"
common=(--replicas 0 --label autoscaler.enabled=true --label "srtest=$tag")
create_service a "${common[@]}" --label tier=web --label "com.docker.stack.namespace=$stack" \
    --label autoscaler.metric=cpu local/busybox:1 sleep 1000000
create_service b "${common[@]}" --label tier=db --label "com.docker.stack.namespace=$stack" \
    --label autoscaler.metric=memory local/busybox:1 sleep 1000000
create_service c "${common[@]}" --label tier=web --label autoscaler.metric=memory \
    local/busybox:1 sleep 1000000
start_registry http REFRESH_INTERVAL_SEC=3600
URL="http://127.0.0.1:$REG_PORT"
A="${SR_PREFIX}a" B="${SR_PREFIX}b" C="${SR_PREFIX}c"
all3() { [[ $(curl -s "$URL/services?label=srtest=$tag" | jq .count) == 3 ]]; }
poll_until 15 all3; ok $? "three labelled services cached"

names() { jq -r '[.services[].name] | join(",")' <<<"$BODY"; }
for proto in http1.1 http2-prior-knowledge http2; do
    p=(--"$proto")
    req "${p[@]}" "$URL/services?stack=$stack"
    is "$(names)" "$A,$B" "[$proto] ?stack=NAME"
    req "${p[@]}" "$URL/services?label=srtest=$tag&label=tier=web"
    is "$(names)" "$A,$C" "[$proto] ?label=K=V&label=K=V (AND)"
    req "${p[@]}" "$URL/services?label=srtest=$tag&metric=memory"
    is "$(names)" "$B,$C" "[$proto] ?metric=memory"
    req "${p[@]}" "$URL/services?label=srtest=$tag&metric=cpu&stack=$stack&label=tier"
    is "$(names)" "$A" "[$proto] all filters at once"
    req "${p[@]}" "$URL/services?label=srtest=$tag&metric=disk"
    is "$HTTP_STATUS/$(jq .count <<<"$BODY")" "200/0" "[$proto] unknown filter value: empty list, 200"
    req "${p[@]}" "$URL/services?label=srtest=$tag&bogus=1&x"
    is "$(jq .count <<<"$BODY")" 3 "[$proto] unknown query parameters ignored"

    req "${p[@]}" "$URL/services"
    etag=$(awk 'tolower($1)=="etag:" {print $2}' "$SR_TMP/headers" | tr -d '\r')
    [[ $etag =~ ^\"v[0-9]+-services\"$ ]]; ok $? "[$proto] ETag \"v<cache_version>-services\" ($etag)"
    v=$(jq .cache_version <<<"$BODY")
    is "$etag" "\"v$v-services\"" "[$proto] ETag follows the body's cache_version"
    grep -qi '^date: .* GMT' "$SR_TMP/headers"; ok $? "[$proto] Date"
    grep -qi '^server: swarm-registry/' "$SR_TMP/headers"; ok $? "[$proto] Server with the version"
    grep -qi '^cache-control: no-cache' "$SR_TMP/headers"; ok $? "[$proto] Cache-Control: no-cache"
    # The swarm is shared: the version may move between two requests. A 200
    # is only right if its tag differs from the one sent; retry then.
    cond() { # curl args...: sets COND (304 | 200-new-tag | bad: ...)
        local i cur
        for i in 1 2 3 4 5; do
            req "${p[@]}" "$URL/services"
            cur=$(awk 'tolower($1)=="etag:" {print $2}' "$SR_TMP/headers" | tr -d '\r')
            : >"$SR_TMP/body" # curl leaves the file alone when there is no body
            req "${p[@]}" "$@" -H "If-None-Match: $PFX$cur" "$URL/services"
            [[ $HTTP_STATUS == 304 ]] && { COND=304; return; }
            grep -qi "^etag: $cur" "$SR_TMP/headers" && { COND="bad: 200 with the same tag"; return; }
        done
        COND="bad: no 304 in 5 tries"
    }
    PFX='' cond
    is "$COND" 304 "[$proto] If-None-Match: current tag -> 304"
    is "${#BODY}" 0 "[$proto] 304 has no body"
    PFX='W/' cond -I
    is "$COND" 304 "[$proto] HEAD, weak comparison -> 304"
    # (h2 prior knowledge joined repeated fields already; the h1 parser and
    # the h2c upgrade from it did not.)
    if [[ $proto != http2-prior-knowledge ]]; then
        PFX='' cond -H 'If-None-Match: "other"'
        is "$COND" 304 "[$proto] If-None-Match: \"other\", then the current tag on a second line -> 304"
    fi
    req "${p[@]}" -H 'If-None-Match: "v0-services"' "$URL/services"
    is "$HTTP_STATUS" 200 "[$proto] stale tag -> 200"
    req "${p[@]}" -H 'If-Match: "v0-services"' "$URL/services"
    is "$HTTP_STATUS" 412 "[$proto] If-Match with a stale tag -> 412"
    req "${p[@]}" -H 'If-Match: *' "$URL/services"
    is "$HTTP_STATUS" 200 "[$proto] If-Match: * -> 200"
    req "${p[@]}" -X POST -H 'If-Match: *' "$URL/cache/clear"
    is "$HTTP_STATUS" 412 "[$proto] POST /cache/clear with If-Match: 412, nothing cleared"

    req "${p[@]}" "$URL/services/$A/metrics"
    is "$HTTP_STATUS" 200 "[$proto] GET /services/{name}/metrics: 200"
    jq -e 'has("age_sec") and .service_id != null' <<<"$BODY" >/dev/null
    ok $? "[$proto] metrics carry service_id and age_sec: $(jq -c '{service_id,age_sec,reason}' <<<"$BODY")"
    grep -qi '^etag: W/"v' "$SR_TMP/headers"; ok $? "[$proto] metrics: weak ETag"
    req "${p[@]}" "$URL/services/nope-$tag/metrics"
    is "$HTTP_STATUS" 404 "[$proto] metrics of an unknown service: 404"
    req "${p[@]}" -X PUT "$URL/services/$A/metrics"
    is "$HTTP_STATUS" 405 "[$proto] PUT metrics: 405"
    grep -qi '^allow: GET, HEAD, POST' "$SR_TMP/headers"; ok $? "[$proto] ... Allow: GET, HEAD, POST"
    req "${p[@]}" -X POST "$URL/services/$A/metrics"
    if [[ $HTTP_STATUS == 200 ]]; then
        jq -e 'has("age_sec")' <<<"$BODY" >/dev/null; ok $? "[$proto] POST metrics: fresh metrics"
    else
        is "$HTTP_STATUS/$(jq -r .error <<<"$BODY")" "503/metrics_unavailable" \
            "[$proto] POST metrics: 200, or 503 without a collector"
    fi

    req "${p[@]}" "$URL/events"
    jq -e '(.events | map(.routing_key)) == ["services.updated","service.added","service.removed",
           "service.updated","metrics.{service_name}","health.check"] and has("exchange")
           and (.publisher.status | type) == "string"' <<<"$BODY" >/dev/null
    ok $? "[$proto] GET /events: event types, routing keys, exchange, publisher"
    req "${p[@]}" "$URL/events/"
    is "$HTTP_STATUS" 404 "[$proto] /events is exact-path"
    req "${p[@]}" -X DELETE "$URL/events"
    is "$HTTP_STATUS" 405 "[$proto] DELETE /events: 405"
    req "${p[@]}" "$URL/health"
    jq -e '(.publisher | type) == "object" and (.publisher.status | type) == "string"' <<<"$BODY" >/dev/null
    ok $? "[$proto] /health carries the publisher's status"

    # A name that is not UTF-8 once decoded used to abort the process.
    for bad in /services/%ff /services/%C3/metrics; do
        req "${p[@]}" "$URL$bad"
        is "$HTTP_STATUS/$(jq -r .error <<<"$BODY")" 404/service_not_found "[$proto] GET $bad: 404 JSON"
    done
done
# raw FORMAT: sends printf FORMAT as is on a new connection (send
# Connection: close, or have it refused) and sums up the one answer, read
# until the server closes: "<status> cl=<Content-Length> body=<bytes after
# the head>", " allow=<Allow>" when there is one, and " etag" when the
# answer has an ETag.
raw() {
    printf "$1" | timeout 5 /usr/bin/python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(sys.stdin.buffer.read())
d = b""
while (c := s.recv(65536)): d += c
head, _, body = d.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
h = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
allow = " allow=" + h["allow"] if "allow" in h else ""
etag = " etag" if "etag" in h else ""
print(lines[0].split(" ")[1], "cl=" + h.get("content-length", "-"), "body=%d%s%s" % (len(body), allow, etag))' \
        "$REG_PORT"
}
# The same with raw bytes in the request line (curl would encode them).
got=$(raw 'GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
is "${got%% *}" 404 "raw bytes that are not UTF-8 in the path: 404"
answers "$REG_PORT"; ok $? "... and the registry still answers"

# An invalid Host value: 400 (RFC 9112 §3.2).
for h in 'a b' 'a/b' '<script>' 'a@b' '[::1'; do
    got=$(raw "GET /health HTTP/1.1\r\nHost: $h\r\nConnection: close\r\n\r\n")
    is "${got%% *}" 400 "Host: $h -> 400"
done

# Methods and transfer codings the server does not implement: 501.
for m in FOO get; do
    got=$(raw "$m /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    is "${got%% *}" 501 "$m /health (methods are case-sensitive): 501"
    is "$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge -X "$m" "$URL/health")" 501 \
        "[http2-prior-knowledge] $m /health: 501"
done
got=$(raw 'POST /cache/clear HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n')
is "${got%% *}" 501 "Transfer-Encoding: gzip: 501"
got=$(raw 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
is "${got%% *} ${got#* * * }" "405 allow=GET, HEAD, POST etag" "OPTIONS *: 405, Allow: GET, HEAD, POST"

# A HEAD refused by the parser: the head, with the error body's length, no body.
for r in '/health HTTP/1.1\r\n' '/health HTTP/3.0\r\nHost: x\r\n' \
    '/health HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n' \
    '/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n' \
    '/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n' \
    "/health?x=$(head -c 9000 /dev/zero | tr '\0' a) HTTP/1.1\r\nHost: x\r\n" \
    "/health HTTP/1.1\r\nHost: x\r\nX-Big: $(head -c 70000 /dev/zero | tr '\0' b)\r\n"; do
    get=$(raw "GET $r\r\n")
    is "$(raw "HEAD $r\r\n")" "${get% body=*} body=0 etag" "HEAD refused with ${get%% *}: the GET's head, no body"
    [[ $get == *' etag' ]]; ok $? "${get%% *} from the parser: JSON with an ETag, as every JSON answer"
done

# Upgrade: h2c really happens (curl --http2 on http://), and is ignored with a body.
v=$(curl -s -o "$SR_TMP/up" -w '%{http_version}' --http2 "$URL/services?stack=$stack")
is "$v" 2 "curl --http2 http://: upgraded to HTTP/2"
curl -s --http1.1 -o "$SR_TMP/plain" "$URL/services?stack=$stack"
cmp -s "$SR_TMP/up" "$SR_TMP/plain"; ok $? "the upgraded stream 1 carries the same bytes"
v=$(curl -s -o /dev/null -w '%{http_version}' --http2 -X POST -d x "$URL/cache/stats")
is "$v" 1.1 "Upgrade with a request body: ignored, answered in HTTP/1.1"

head -c 1100000 /dev/zero > "$SR_TMP/big"
req --http1.1 -X POST --data-binary @"$SR_TMP/big" "$URL/cache/clear"
is "$HTTP_STATUS" 413 "request body over 1 MiB: 413"
is "$(curl -s "$URL/services?label=srtest=$tag" | jq .count)" 3 "... and nothing was cleared"
done_testing

# TAP helpers for the integration scripts (source it).
#   ok COND_EXIT_STATUS "name"     e.g.  ok $? "..."  or  check "name" cmd args
#   is GOT WANT "name"
#   done_testing                  prints the plan, exits 1 on failure
_tap_n=0
_tap_failed=0

ok() {
    local rc=$1; shift
    _tap_n=$((_tap_n + 1))
    if [[ "$rc" == 0 ]]; then
        echo "ok $_tap_n - $*"
    else
        _tap_failed=$((_tap_failed + 1))
        echo "not ok $_tap_n - $*"
    fi
}

check() {
    local name=$1; shift
    "$@" >/dev/null 2>&1
    ok $? "$name"
}

is() {
    local got=$1 want=$2; shift 2
    if [[ "$got" == "$want" ]]; then
        ok 0 "$*"
    else
        ok 1 "$*"
        echo "#   got:  '$got'"
        echo "#   want: '$want'"
    fi
}

diag() { echo "# $*"; }

skip() { # skip "name" "reason"
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n - $1 # SKIP $2"
}

skip_all() { echo "1..0 # SKIP $*"; exit 0; }

done_testing() {
    echo "1..$_tap_n"
    [[ $_tap_failed == 0 ]]
}

# scripts/lib.sh - shared by scripts/run and scripts/test (sourced, not run).

MX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MX_SHARED=${MX_SHARED_DIR:-$(cd "$MX_ROOT/.." && pwd)/shared}

# Debian 12 packages the build needs, then those tests and benchmarks need.
MX_BUILD_PKGS="cmake make gcc g++ pkg-config libuv1-dev libnng-dev libhiredis-dev libmsgpack-dev
  libmsgpuck-dev libsimdjson-dev libfmt-dev node-llhttp libcurl4-openssl-dev zlib1g-dev libssl-dev
  default-libmysqlclient-dev libcmocka-dev python3-yaml"
MX_RUN_PKGS="redis-server mariadb-server mariadb-client openssl"
MX_TEST_PKGS="procps openssl python3 python3-yaml python3-jsonschema prometheus redis-server redis-sentinel mariadb-server mariadb-client haproxy clang clang-format libclang-rt-14-dev"
MX_BENCH_PKGS="erlang-base wrk nginx-light"

mx_log() { printf '== %s\n' "$*" >&2; }

# mx_install PKG... - apt-get install whatever is not installed yet (as root,
# or through sudo otherwise).
mx_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; return 1; }
        sudo="sudo"
    fi
    mx_log "installing: ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# mx_build DIR [CMAKE ARGS...] - configure and build into DIR.
mx_build() {
    local dir=$1
    shift
    cmake -S "$MX_ROOT" -B "$dir" -DMX_SHARED_DIR="$MX_SHARED" "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
}

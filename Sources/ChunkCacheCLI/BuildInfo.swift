import CBuildInfo

/// What this binary is: the release version (CHANGELOG.md) and the commit it was built from.
enum BuildInfo {
    static let version = "0.4.0"
    static let commit = String(cString: chunkcache_commit())
    /// "0.4.0 (a7253d0)", as `--version` prints it.
    static let description = "\(version) (\(commit))"
    /// "0.4.0+a7253d0", as runs are recorded.
    static let token = "\(version)+\(commit)"
}

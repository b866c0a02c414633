import CLinux

/// The process's heap.
public enum Memory {
    /// Gives the pages of freed heap memory back to the system (glibc's `malloc_trim`), so a
    /// long phase that follows a busy one does not carry the busy one's footprint.
    public static func returnFreePages() {
        #if os(Linux)
        _ = malloc_trim(0)
        #endif
    }
}

import ChunkStore
import FileIO
import Testing

@Suite("Store safety")
struct SecurityTests {
    @Test("a new store is private to its user")
    func privateByDefault() throws {
        let temp = try TemporaryStore()
        _ = try temp.open()
        #expect(try FileSystem.status(of: temp.path + "/store").mode & 0o077 == 0)
    }

    @Test("a store writable by other users is refused with a clear message")
    func worldWritableRefused() throws {
        let temp = try TemporaryStore()
        _ = try temp.open()
        try FileSystem.setPermissions(temp.path + "/store", 0o777)
        let error = #expect(throws: StoreError.self) { try temp.open() }
        #expect(error?.kind == .unsafe)
        #expect(error?.description.contains("writable by other users") == true)
    }

    @Test("a symbolic link planted where the store's own files belong is refused, not followed")
    func plantedSymlinkRefused() throws {
        let temp = try TemporaryStore()
        _ = try temp.open()
        try FileSystem.removeTree(temp.path + "/store/tmp")
        try FileSystem.createDirectories(temp.path + "/elsewhere")
        #expect(symlink(temp.path + "/elsewhere", temp.path + "/store/tmp") == 0)
        let error = #expect(throws: StoreError.self) { try temp.open() }
        #expect(error?.kind == .unsafe)
        #expect(error?.description.contains("symbolic link") == true)
        #expect(try FileSystem.contentsOfDirectory(temp.path + "/elsewhere").isEmpty)
    }
}

#if canImport(Glibc)
import Glibc
#endif

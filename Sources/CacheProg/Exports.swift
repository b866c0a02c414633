// Handlers speak in the wire layer's types (ActionID, OutputID, Timestamp); re-export them so
// `import CacheProg` is all a backend needs.
@_exported import CacheProgWire

// A few libcurl calls, with libcurl loaded on first use (dlopen) rather than at process start:
// linking it (or FoundationNetworking, which links it) costs every run of chunkcache about 6 ms
// of library loading before it can answer the go command, and most runs use no remote cache.
#ifndef CCURL_H
#define CCURL_H

#include <stddef.h>

/// Bytes received, grown by libcurl's write callback (freed with ccurl_buffer_free).
typedef struct ccurl_buffer {
    unsigned char *data;
    size_t length;
    size_t capacity;
    size_t limit;  // a larger response fails the request
} ccurl_buffer;

/// Loads libcurl if it is not loaded yet. Returns 0, or -1 with a reason in `error`.
int ccurl_load(char *error, size_t error_size);

/// A reusable handle (it keeps its connection open between requests); NULL if libcurl is not loaded.
void *ccurl_handle_new(void);
void ccurl_handle_free(void *handle);

/// Performs one request. `method` is GET, HEAD or PUT (with `body`). `headers` are
/// "Name: value" lines. Returns 0 with the status in `status`, the response body in `response`
/// and, if `response_headers` is not NULL, the header lines (every response's, redirects
/// included) in it; or -1 with a reason in `error` (at least 256 bytes).
int ccurl_perform(void *handle, const char *method, const char *url,
                  const char *const *headers, int header_count,
                  const void *body, size_t body_length, long timeout_ms,
                  ccurl_buffer *response, ccurl_buffer *response_headers, long *status, char *error);

void ccurl_buffer_free(ccurl_buffer *buffer);

#endif

#include "ccurl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// libcurl's ABI-stable option numbers (curl/curl.h), so building needs no libcurl headers.
enum {
    OPT_WRITEDATA = 10001, OPT_URL = 10002, OPT_ERRORBUFFER = 10010, OPT_POSTFIELDS = 10015,
    OPT_HTTPHEADER = 10023, OPT_CUSTOMREQUEST = 10036, OPT_WRITEFUNCTION = 20011,
    OPT_POSTFIELDSIZE_LARGE = 30120, OPT_NOBODY = 44, OPT_HTTPGET = 80, OPT_NOSIGNAL = 99,
    OPT_TIMEOUT_MS = 155, OPT_CONNECTTIMEOUT_MS = 156, OPT_HEADERDATA = 10029, OPT_HEADERFUNCTION = 20079,
    INFO_RESPONSE_CODE = 0x200000 + 2, GLOBAL_ALL = 3, ERROR_SIZE = 256,
};

struct slist;
static struct {
    int (*global_init)(long);
    void *(*easy_init)(void);
    void (*easy_cleanup)(void *);
    void (*easy_reset)(void *);
    int (*easy_setopt)(void *, int, ...);
    int (*easy_perform)(void *);
    int (*easy_getinfo)(void *, int, ...);
    const char *(*easy_strerror)(int);
    struct slist *(*slist_append)(struct slist *, const char *);
    void (*slist_free_all)(struct slist *);
} curl;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];
static int loaded;

static void load(void) {
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(load_error, sizeof load_error, "cannot load libcurl.so.4 (install libcurl4): %s", dlerror());
        return;
    }
#define SYMBOL(field, name)                                                             \
    if (!(*(void **)&curl.field = dlsym(library, name))) {                              \
        snprintf(load_error, sizeof load_error, "libcurl.so.4 lacks %s", name);         \
        return;                                                                         \
    }
    SYMBOL(global_init, "curl_global_init")
    SYMBOL(easy_init, "curl_easy_init")
    SYMBOL(easy_cleanup, "curl_easy_cleanup")
    SYMBOL(easy_reset, "curl_easy_reset")
    SYMBOL(easy_setopt, "curl_easy_setopt")
    SYMBOL(easy_perform, "curl_easy_perform")
    SYMBOL(easy_getinfo, "curl_easy_getinfo")
    SYMBOL(easy_strerror, "curl_easy_strerror")
    SYMBOL(slist_append, "curl_slist_append")
    SYMBOL(slist_free_all, "curl_slist_free_all")
#undef SYMBOL
    if (curl.global_init(GLOBAL_ALL) != 0) {
        snprintf(load_error, sizeof load_error, "curl_global_init failed");
        return;
    }
    loaded = 1;
}

int ccurl_load(char *error, size_t error_size) {
    pthread_once(&once, load);
    if (loaded) return 0;
    snprintf(error, error_size, "%s", load_error);
    return -1;
}

void *ccurl_handle_new(void) { return loaded ? curl.easy_init() : NULL; }

void ccurl_handle_free(void *handle) {
    if (handle) curl.easy_cleanup(handle);
}

static size_t collect(char *data, size_t size, size_t count, void *context) {
    ccurl_buffer *buffer = context;
    size_t n = size * count;
    if (buffer->length + n > buffer->limit) return 0;  // libcurl fails the transfer
    if (buffer->length + n > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 16384;
        while (capacity < buffer->length + n) capacity *= 2;
        unsigned char *grown = realloc(buffer->data, capacity);
        if (!grown) return 0;
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->length, data, n);
    buffer->length += n;
    return n;
}

int ccurl_perform(void *handle, const char *method, const char *url,
                  const char *const *headers, int header_count,
                  const void *body, size_t body_length, long timeout_ms,
                  ccurl_buffer *response, ccurl_buffer *response_headers, long *status, char *error) {
    error[0] = 0;
    curl.easy_reset(handle);  // options only: the connection stays open for the next request
    struct slist *list = NULL;
    for (int i = 0; i < header_count; i++) list = curl.slist_append(list, headers[i]);
    list = curl.slist_append(list, "Expect:");  // no 100-continue round trip before a PUT's body
    curl.easy_setopt(handle, OPT_URL, url);
    curl.easy_setopt(handle, OPT_HTTPHEADER, list);
    curl.easy_setopt(handle, OPT_NOSIGNAL, 1L);
    curl.easy_setopt(handle, OPT_TIMEOUT_MS, timeout_ms);
    curl.easy_setopt(handle, OPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl.easy_setopt(handle, OPT_ERRORBUFFER, error);
    curl.easy_setopt(handle, OPT_WRITEFUNCTION, collect);
    curl.easy_setopt(handle, OPT_WRITEDATA, response);
    if (response_headers) {
        curl.easy_setopt(handle, OPT_HEADERFUNCTION, collect);
        curl.easy_setopt(handle, OPT_HEADERDATA, response_headers);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl.easy_setopt(handle, OPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") == 0) {
        curl.easy_setopt(handle, OPT_HTTPGET, 1L);
    } else {
        curl.easy_setopt(handle, OPT_POSTFIELDS, body ? body : "");
        curl.easy_setopt(handle, OPT_POSTFIELDSIZE_LARGE, (long long)body_length);
        curl.easy_setopt(handle, OPT_CUSTOMREQUEST, method);
    }
    int code = curl.easy_perform(handle);
    curl.slist_free_all(list);
    curl.easy_setopt(handle, OPT_ERRORBUFFER, (char *)NULL);
    if (code != 0) {
        if (!error[0]) snprintf(error, ERROR_SIZE, "%s", curl.easy_strerror(code));
        return -1;
    }
    curl.easy_getinfo(handle, INFO_RESPONSE_CODE, status);
    return 0;
}

void ccurl_buffer_free(ccurl_buffer *buffer) {
    free(buffer->data);
    buffer->data = NULL;
    buffer->length = buffer->capacity = 0;
}

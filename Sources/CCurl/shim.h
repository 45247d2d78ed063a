#ifndef CLEANROOM_CCURL_SHIM_H
#define CLEANROOM_CCURL_SHIM_H
/* libcurl, opened with dlopen only when an S3 or STS request is about to be sent.
 *
 * Why not link it: linking (as FoundationNetworking did) makes the loader map and initialize
 * libcurl and the 28 libraries it needs (GnuTLS, Kerberos, OpenLDAP, libssh2...) in every process,
 * including the ones that hold a party's secret scalar and never touch the network: ~5 MiB
 * resident each and code with no business there (Protocol/SPEC.md §12 "HTTP", BENCHMARKS.md
 * "libcurl only where S3 is used").
 *
 * Only the types and constants come from <curl/curl.h> (Debian's libcurl4-openssl-dev); this
 * module map links nothing. The functions are reached through the pointers in cr_curl_api, and
 * the variadic ones (curl_easy_setopt, curl_easy_getinfo) through the typed trampolines below,
 * because Swift cannot call a C variadic function: each trampoline passes exactly the argument
 * type libcurl documents for its options. */
#include <dlfcn.h>
#include <curl/curl.h>

typedef struct {
    void *library;
    void *global_init, *version_info, *easy_init, *easy_setopt, *easy_perform, *easy_getinfo,
         *easy_reset, *easy_cleanup, *easy_strerror, *slist_append, *slist_free_all;
} cr_curl_api;

/* Opens `path` and resolves every function; 0 on success. On failure nothing stays open and
 * `why` holds dlerror()'s message, copied before dlclose (which would clear it). */
static inline void cr_curl_copy_error(char *why, size_t size) {
    const char *e = dlerror();
    if (size == 0) return;
    size_t i = 0;
    for (; e && e[i] && i + 1 < size; i++) why[i] = e[i];
    why[i] = 0;
}
static inline int cr_curl_open(cr_curl_api *api, const char *path, char *why, size_t size) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) { cr_curl_copy_error(why, size); return -1; }
    api->library = lib;
#define CR_RESOLVE(field, name) if (!(api->field = dlsym(lib, name))) { cr_curl_copy_error(why, size); dlclose(lib); api->library = 0; return -2; }
    CR_RESOLVE(global_init, "curl_global_init")
    CR_RESOLVE(version_info, "curl_version_info")
    CR_RESOLVE(easy_init, "curl_easy_init")
    CR_RESOLVE(easy_setopt, "curl_easy_setopt")
    CR_RESOLVE(easy_perform, "curl_easy_perform")
    CR_RESOLVE(easy_getinfo, "curl_easy_getinfo")
    CR_RESOLVE(easy_reset, "curl_easy_reset")
    CR_RESOLVE(easy_cleanup, "curl_easy_cleanup")
    CR_RESOLVE(easy_strerror, "curl_easy_strerror")
    CR_RESOLVE(slist_append, "curl_slist_append")
    CR_RESOLVE(slist_free_all, "curl_slist_free_all")
#undef CR_RESOLVE
    return 0;
}

static inline CURLcode cr_curl_global_init(const cr_curl_api *a, long flags) {
    return ((CURLcode (*)(long))a->global_init)(flags);
}
static inline const char *cr_curl_version(const cr_curl_api *a) {
    curl_version_info_data *d = ((curl_version_info_data *(*)(CURLversion))a->version_info)(CURLVERSION_NOW);
    return d ? d->version : "unknown";
}
static inline CURL *cr_curl_easy_init(const cr_curl_api *a) { return ((CURL *(*)(void))a->easy_init)(); }
static inline CURLcode cr_curl_easy_perform(const cr_curl_api *a, CURL *h) { return ((CURLcode (*)(CURL *))a->easy_perform)(h); }
static inline void cr_curl_easy_reset(const cr_curl_api *a, CURL *h) { ((void (*)(CURL *))a->easy_reset)(h); }
static inline void cr_curl_easy_cleanup(const cr_curl_api *a, CURL *h) { ((void (*)(CURL *))a->easy_cleanup)(h); }
static inline const char *cr_curl_easy_strerror(const cr_curl_api *a, CURLcode c) {
    return ((const char *(*)(CURLcode))a->easy_strerror)(c);
}
static inline struct curl_slist *cr_curl_slist_append(const cr_curl_api *a, struct curl_slist *l, const char *s) {
    return ((struct curl_slist *(*)(struct curl_slist *, const char *))a->slist_append)(l, s);
}
static inline void cr_curl_slist_free_all(const cr_curl_api *a, struct curl_slist *l) {
    ((void (*)(struct curl_slist *))a->slist_free_all)(l);
}

typedef CURLcode (*cr_curl_setopt_fn)(CURL *, CURLoption, ...);
/* CURLOPTTYPE_LONG options. */
static inline CURLcode cr_curl_setopt_long(const cr_curl_api *a, CURL *h, CURLoption o, long v) {
    return ((cr_curl_setopt_fn)a->easy_setopt)(h, o, v);
}
/* CURLOPTTYPE_OFF_T options (the *_LARGE sizes). */
static inline CURLcode cr_curl_setopt_off(const cr_curl_api *a, CURL *h, CURLoption o, curl_off_t v) {
    return ((cr_curl_setopt_fn)a->easy_setopt)(h, o, v);
}
/* CURLOPTTYPE_STRINGPOINT options (libcurl copies the string). */
static inline CURLcode cr_curl_setopt_string(const cr_curl_api *a, CURL *h, CURLoption o, const char *v) {
    return ((cr_curl_setopt_fn)a->easy_setopt)(h, o, v);
}
/* CURLOPTTYPE_OBJECTPOINT / CBPOINT options: user data, the error buffer. */
static inline CURLcode cr_curl_setopt_pointer(const cr_curl_api *a, CURL *h, CURLoption o, void *v) {
    return ((cr_curl_setopt_fn)a->easy_setopt)(h, o, v);
}
/* CURLOPTTYPE_SLISTPOINT options (the list must outlive the transfer). */
static inline CURLcode cr_curl_setopt_slist(const cr_curl_api *a, CURL *h, CURLoption o, struct curl_slist *v) {
    return ((cr_curl_setopt_fn)a->easy_setopt)(h, o, v);
}
/* CURLOPTTYPE_FUNCTIONPOINT options with the (char *, size_t, size_t, void *) shape:
 * CURLOPT_WRITEFUNCTION, CURLOPT_HEADERFUNCTION, CURLOPT_READFUNCTION. */
typedef size_t (*cr_curl_data_callback)(char *, size_t, size_t, void *);
static inline CURLcode cr_curl_setopt_callback(const cr_curl_api *a, CURL *h, CURLoption o, cr_curl_data_callback v) {
    return ((cr_curl_setopt_fn)a->easy_setopt)(h, o, v);
}
/* CURLOPT_SEEKFUNCTION: libcurl rewinds a request body to send it again on a fresh connection
 * (a pooled connection the server had closed). */
typedef int (*cr_curl_seek_callback)(void *, curl_off_t, int);
static inline CURLcode cr_curl_setopt_seek(const cr_curl_api *a, CURL *h, CURLoption o, cr_curl_seek_callback v) {
    return ((cr_curl_setopt_fn)a->easy_setopt)(h, o, v);
}
/* CURLINFO_LONG queries. */
static inline CURLcode cr_curl_getinfo_long(const cr_curl_api *a, CURL *h, CURLINFO i, long *out) {
    return ((CURLcode (*)(CURL *, CURLINFO, ...))a->easy_getinfo)(h, i, out);
}
#endif

#ifndef CONVEYOR_CSHIMS_CURL_H
#define CONVEYOR_CSHIMS_CURL_H
/* Typed wrappers for libcurl's variadic curl_easy_setopt / curl_easy_getinfo, which Swift cannot call. */
#include <curl/curl.h>

/* curl_global_init(CURL_GLOBAL_ALL) exactly once per process (thread-safe); returns its CURLcode. */
CURLcode cshims_curl_global_init(void);

CURLcode cshims_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode cshims_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
/* Strings (copied by libcurl since 7.17), slists, buffers and callback data pointers. */
CURLcode cshims_curl_setopt_ptr(CURL *handle, CURLoption option, void *value);
CURLcode cshims_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode cshims_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
/* CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION share this signature. */
CURLcode cshims_curl_setopt_write_function(CURL *handle, CURLoption option, curl_write_callback value);
CURLcode cshims_curl_setopt_read_function(CURL *handle, curl_read_callback value);
CURLcode cshims_curl_setopt_xferinfo_function(CURL *handle, curl_xferinfo_callback value);
/* CURLOPT_SEEKFUNCTION: lets libcurl rewind an upload body (a resend on a fresh connection after a kept-alive one died). */
CURLcode cshims_curl_setopt_seek_function(CURL *handle, curl_seek_callback value);

CURLcode cshims_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode cshims_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value);
CURLcode cshims_curl_getinfo_double(CURL *handle, CURLINFO info, double *value);
CURLcode cshims_curl_getinfo_string(CURL *handle, CURLINFO info, const char **value);

#endif

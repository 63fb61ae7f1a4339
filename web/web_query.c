/* The query string handed to the API handler: lws's decoded URL arguments encoded again so
 * values may hold '&' and '=', and pw_web_query_param() to read one back. */
#include "web_int.h"

#include "pw_util.h"

#include <stdint.h>
#include <string.h>

/* Appends c percent-encoded unless it is unreserved (RFC 3986). */
static size_t web_pct_put(char *out, size_t len, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        strchr("-._~", c)) {
        out[len++] = (char)c;
        return len;
    }
    out[len++] = '%';
    out[len++] = hex[c >> 4];
    out[len++] = hex[c & 15];
    return len;
}

/* lws stores the URL arguments one per fragment, already percent-decoded, so "q=a%26b" arrives
 * as "q=a&b". To hand the server an unambiguous query, each name and value is encoded again
 * and the arguments joined with '&' (pw_web_query_param() decodes them). */
char *web__query_dup(struct lws *wsi)
{
    size_t cap = 1, len = 0;
    for (int i = 0; lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++)
        cap += 3 * (size_t)lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) + 1;
    char *s = pw_xmalloc(cap), *frag = pw_xmalloc(cap);
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, (int)cap, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0)
            break;
        if (len)
            s[len++] = '&';
        const char *eq = strchr(frag, '=');
        for (int k = 0; k < n; k++)
            len = frag + k == eq ? (s[len] = '=', len + 1)
                                 : web_pct_put(s, len, (unsigned char)frag[k]);
    }
    s[len] = '\0';
    free(frag);
    return s;
}

static int web_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes one percent-encoded query component of length n into out; returns its length, or
 * SIZE_MAX when it does not fit in size bytes with the terminating NUL. */
static size_t web_pct_decode(const char *in, size_t n, char *out, size_t size)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (len + 1 >= size)
            return SIZE_MAX;
        int hi, lo;
        if (in[i] == '%' && i + 2 < n && (hi = web_hexval(in[i + 1])) >= 0 &&
            (lo = web_hexval(in[i + 2])) >= 0) {
            out[len++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[len++] = in[i] == '+' ? ' ' : in[i];
        }
    }
    if (size)
        out[len] = '\0';
    return len;
}

int pw_web_query_param(const char *query, const char *name, char *out, size_t size)
{
    size_t name_len = strlen(name);
    for (const char *p = query; p && *p;) {
        size_t arg_len = strcspn(p, "&");
        const char *eq = memchr(p, '=', arg_len);
        size_t key_len = eq ? (size_t)(eq - p) : arg_len;
        char key[128];
        if (web_pct_decode(p, key_len, key, sizeof(key)) == name_len &&
            memcmp(key, name, name_len) == 0) {
            size_t n = web_pct_decode(eq ? eq + 1 : "", eq ? arg_len - key_len - 1 : 0, out, size);
            return n == SIZE_MAX || size == 0 ? -1 : (int)n;
        }
        p += arg_len;
        if (*p == '&')
            p++;
    }
    return -1;
}

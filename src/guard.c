/*
 * guard — Host, Origin and the CORS request headers.
 */
#include "meridian/guard.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* The host of a Host header value, without its port: [start, start+len). */
static bool host_part(const char *host, const char **start, size_t *len)
{
    const char *end;

    if (host[0] == '[') {
        if (!(end = strchr(host, ']')) || (end[1] && end[1] != ':'))
            return false;
        *start = host + 1;
        *len = (size_t)(end - host - 1);
        return true;
    }
    end = strchr(host, ':');
    *start = host;
    *len = end ? (size_t)(end - host) : strlen(host);
    return *len > 0;
}

static bool same_name(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

static bool is_wildcard(const char *listen)
{
    return !strcmp(listen, "0.0.0.0") || !strcmp(listen, "::");
}

/* An IPv4 or IPv6 literal (the latter came bracketed). */
static bool ip_literal(const char *h, size_t len, bool bracketed)
{
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char a[sizeof(struct in6_addr)];

    if (len >= sizeof(buf))
        return false;
    memcpy(buf, h, len);
    buf[len] = '\0';
    return inet_pton(bracketed ? AF_INET6 : AF_INET, buf, a) == 1;
}

bool mr_guard_host_ok(const mr_config_t *cfg, const char *host)
{
    const char *h;
    size_t len;

    if (!host)
        return true;
    if (!host_part(host, &h, &len))
        return false;
    if (same_name(h, len, cfg->listen_host) || same_name(h, len, "localhost"))
        return true;
    if (is_wildcard(cfg->listen_host) && ip_literal(h, len, host[0] == '['))
        return true;
    for (size_t i = 0; i < cfg->n_server_names; i++)
        if (same_name(h, len, cfg->server_names[i]))
            return true;
    return false;
}

/* "http://" or "https://" followed by exactly `host`. */
static bool own_origin(const char *origin, const char *host)
{
    const char *rest = !strncasecmp(origin, "http://", 7)    ? origin + 7
                       : !strncasecmp(origin, "https://", 8) ? origin + 8
                                                             : NULL;
    return rest && host && *host && !strcasecmp(rest, host);
}

bool mr_guard_origin_ok(const mr_config_t *cfg, const char *origin, const char *host)
{
    for (size_t i = 0; i < cfg->n_cors_origins; i++)
        if (!strcmp(cfg->cors_origins[i], "*") || !strcasecmp(cfg->cors_origins[i], origin))
            return true;
    return own_origin(origin, host);
}

static bool header_allowed(const char *name, size_t len)
{
    static const char *const exact[] = {"authorization", "content-type",      "accept",
                                        "x-api-key",     "x-meridian-policy", "x-request-id"};
    static const char *const prefix[] = {"openai-", "anthropic-", "x-stainless-"};

    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (same_name(name, len, exact[i]))
            return true;
    for (size_t i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++)
        if (len > strlen(prefix[i]) && !strncasecmp(name, prefix[i], strlen(prefix[i])))
            return true;
    return false;
}

const char *mr_guard_allow_headers(const char *requested, char *out, size_t n)
{
    size_t o = 0;

    if (!n)
        return out;
    out[0] = '\0';
    while (requested && *requested) {
        size_t skip = strspn(requested, " \t,"), len;
        requested += skip;
        len = strcspn(requested, " \t,");
        if (len && header_allowed(requested, len)) {
            if (o + len + 3 > n) {
                out[0] = '\0';
                return out;
            }
            if (o) {
                memcpy(out + o, ", ", 2);
                o += 2;
            }
            for (size_t i = 0; i < len; i++) {
                char c = requested[i];
                out[o++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            }
            out[o] = '\0';
        }
        requested += len;
    }
    return out;
}

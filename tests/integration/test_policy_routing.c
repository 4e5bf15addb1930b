/*
 * Policy routing on the real binary (issue 3's acceptance): three mock hosts
 * tagged US / FR / CN; a gateway key bound to an EU-only policy that no
 * header, `provider` object or `models` list can widen, even when every EU
 * host is down; max_vendor_share over 1,000 requests; fallback_diversity;
 * least_latency; explain; provider.order and `models` end to end.
 *
 * One worker (--workers 1), so vendor shares and latency EWMAs are one
 * worker's soft state and the figures are deterministic.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Gateway keys: the config holds only their SHA-256 (printf %s KEY | sha256sum). */
#define KEY_EU "mk-team-eu-7f3a9c1e5b2d4086"
#define KEY_EU_SHA "1d610a3b87f55108fc46966cc210b624c8da3669b092ca80311dd9f4eec7710b"
#define KEY_OPS "mk-ops-0c4e8a2b6d9f1357"
#define KEY_OPS_SHA "919f50fcc9f09dca405ea918f73c89018900f92ec6227ffcf157b1c485a0fa52"
#define KEY_WRONG "mk-team-eu-7f3a9c1e5b2d4087"

#define AUTH_EU "Authorization: Bearer " KEY_EU
#define AUTH_OPS "Authorization: Bearer " KEY_OPS

static th_proc_t mock_us, mock_fr, mock_cn, gw;

/*
 * Providers on the three mocks:
 *   us-host / fr-host / cn-host   the geography test (distinct vendors)
 *   a1 (us mock), a2 (fr mock)    vendor-a; b1 (cn mock) vendor-b
 *   slow (fr mock), quick (us mock)
 * "geo" and "pair" list the US host first, so without a policy it is chosen;
 * "lat" lists the slow host first, so only least_latency moves off it.
 */
static char *provider(const char *name, const th_proc_t *mock, const char *vendor,
                      const char *region, const char *jurisdiction)
{
    return th_strf("\"%s\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:%d/v1\","
                   "\"api_key\":\"sk-%s\",\"vendor\":\"%s\",\"region\":\"%s\","
                   "\"jurisdiction\":\"%s\"}",
                   name, mock->port, name, vendor, region, jurisdiction);
}

static char *gateway_config(void)
{
    char *p[] = {
        provider("us-host", &mock_us, "usco", "us", "US"),
        provider("fr-host", &mock_fr, "frco", "eu", "FR"),
        provider("cn-host", &mock_cn, "cnco", "cn", "CN"),
        provider("a1", &mock_us, "vendor-a", "us", "US"),
        provider("a2", &mock_fr, "vendor-a", "eu", "FR"),
        provider("b1", &mock_cn, "vendor-b", "cn", "CN"),
        provider("slow", &mock_fr, "slowco", "eu", "FR"),
        provider("quick", &mock_us, "quickco", "us", "US"),
    };
    char *cfg =
        th_strf("{\"listen\":\"127.0.0.1:0\","
                /* these tests hammer failing mocks on purpose: keep breakers and the
                 * retry budget out of the way (test_breaker covers them) */
                " \"health\":{\"failure_threshold\":1000000}, "
                "\"retry_budget\":{\"min_retries_per_s\":100000},"
                " \"providers\":{%s,%s,%s,%s,%s,%s,%s,%s},"
                " \"routes\":{"
                "  \"geo\":{\"targets\":[{\"provider\":\"us-host\",\"model\":\"m-us\"},"
                "                       {\"provider\":\"fr-host\",\"model\":\"m-fr\"},"
                "                       {\"provider\":\"cn-host\",\"model\":\"m-cn\"}]},"
                "  \"pair\":{\"targets\":[{\"provider\":\"us-host\",\"model\":\"m-us\"},"
                "                        {\"provider\":\"cn-host\",\"model\":\"m-cn\"}]},"
                "  \"div\":{\"targets\":[{\"provider\":\"a1\",\"model\":\"m-a1\"},"
                "                       {\"provider\":\"a2\",\"model\":\"m-a2\"},"
                "                       {\"provider\":\"b1\",\"model\":\"m-b1\"}]},"
                "  \"lat\":{\"targets\":[{\"provider\":\"slow\",\"model\":\"m-slow\"},"
                "                       {\"provider\":\"quick\",\"model\":\"m-quick\"}]}},"
                " \"policies\":{"
                "  \"eu-only\":{\"allow\":{\"region\":[\"eu\"]}},"
                "  \"anywhere\":{\"allow\":{\"region\":[\"us\",\"eu\",\"cn\"]}},"
                "  \"us-only\":{\"allow\":{\"region\":[\"us\"]}},"
                "  \"no-cn-no-us\":{\"deny\":{\"jurisdiction\":[\"CN\",\"US\"]}},"
                "  \"capped\":{\"max_vendor_share\":0.5,\"share_window_s\":600},"
                "  \"diverse\":{\"fallback_diversity\":\"vendor\"},"
                "  \"fastest\":{\"strategy\":\"least_latency\"}},"
                " \"keys\":{\"team-eu\":{\"sha256\":\"" KEY_EU_SHA "\",\"policy\":\"eu-only\"},"
                "          \"ops\":{\"sha256\":\"" KEY_OPS_SHA "\"}},"
                " \"timeouts\":{\"connect_ms\":1000,\"first_byte_ms\":3000,\"request_ms\":8000}}",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
        free(p[i]);
    return cfg;
}

static int group_setup(void **state)
{
    (void)state;
    if (th_start_mock(&mock_us, "us") < 0 || th_start_mock(&mock_fr, "fr") < 0 ||
        th_start_mock(&mock_cn, "cn") < 0)
        return -1;
    char *cfg = gateway_config();
    const char *args[] = {"--workers", "1", NULL};
    int rc = th_start_meridian_ex(&gw, cfg, args, NULL);
    free(cfg);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = th_stop(&gw);
    th_stop(&mock_us);
    th_stop(&mock_fr);
    th_stop(&mock_cn);
    return rc == 0 ? 0 : -1;
}

static int reset_mocks(void **state)
{
    (void)state;
    return th_mock_reset(&mock_us) | th_mock_reset(&mock_fr) | th_mock_reset(&mock_cn);
}

/* ---- helpers ---------------------------------------------------------- */

/* POST /v1/chat/completions with an Authorization line (or NULL) and up to
 * two more header lines (or NULL). */
static void chat_ex(const th_http_opts_t *o, const char *auth, const char *h1, const char *h2,
                    const char *body, th_response_t *r)
{
    const char *hdrs[4] = {NULL, NULL, NULL, NULL};
    size_t n = 0;
    char url[256];

    if (auth)
        hdrs[n++] = auth;
    if (h1)
        hdrs[n++] = h1;
    if (h2)
        hdrs[n++] = h2;
    th_http_ex(o, "POST", th_url_buf(&gw, "/v1/chat/completions", url, sizeof(url)), hdrs, body,
               strlen(body), r);
}

static void chat(const char *auth, const char *h1, const char *body, th_response_t *r)
{
    chat_ex(NULL, auth, h1, NULL, body, r);
}

static const char *hdr(const th_response_t *r, const char *name, char *buf, size_t n)
{
    const char *v = th_header(r, name, buf, n);
    return v ? v : "(none)";
}

static void assert_header(const th_response_t *r, const char *name, const char *want)
{
    char buf[256];
    const char *v = th_header(r, name, buf, sizeof(buf));
    if (!v || strcmp(v, want) != 0)
        fail_msg("header %s: want \"%s\", got \"%s\"\nheaders:\n%s\nbody: %s", name, want,
                 v ? v : "(none)", r->headers, r->body);
}

/* An OpenAI-shaped error with this status and code; returns the parsed body
 * (caller json_decrefs). */
static json_t *assert_error(const th_response_t *r, long status, const char *code)
{
    if (r->status != status)
        fail_msg("status: want %ld, got %ld; body: %s", status, r->status, r->body);
    json_t *root = th_json(r);
    if (!root)
        fail_msg("error body is not JSON: %s", r->body);
    json_t *err = json_object_get(root, "error");
    assert_true(json_is_object(err));
    assert_true(json_is_string(json_object_get(err, "message")));
    assert_true(json_is_string(json_object_get(err, "type")));
    assert_true(json_object_get(err, "param") != NULL);
    const char *got = json_string_value(json_object_get(err, "code"));
    if (!got || strcmp(got, code) != 0)
        fail_msg("code: want %s, got %s; body: %s", code, got ? got : "null", r->body);
    return root;
}

static const char *err_message(const json_t *root)
{
    return json_string_value(json_object_get(json_object_get(root, "error"), "message"));
}

static void assert_served_by(const th_response_t *r, const char *provider, const char *attempts)
{
    char who[64];
    if (r->status != 200)
        fail_msg("want 200 from %s, got %ld from %s: %s", provider, r->status,
                 hdr(r, "x-meridian-provider", who, sizeof(who)), r->body);
    assert_header(r, "x-meridian-provider", provider);
    assert_header(r, "x-meridian-attempts", attempts);
}

static long requests_of(const th_proc_t *m)
{
    return th_mock_stat(m, "requests");
}

/* The body of recorded request `i` of a mock (malloc'd; caller frees). */
static char *recorded_body(const th_proc_t *m, size_t i)
{
    json_t *seen = th_mock_requests(m);
    assert_non_null(seen);
    const char *b = json_string_value(json_object_get(json_array_get(seen, i), "body"));
    char *copy = strdup(b ? b : "(no such request)");
    json_decref(seen);
    return copy;
}

static void assert_recorded_body(const th_proc_t *m, size_t i, const char *want)
{
    char *got = recorded_body(m, i);
    if (strcmp(got, want) != 0)
        fail_msg("upstream body #%zu: want %s, got %s", i, want, got);
    free(got);
}

/* GET /v1/gateway/route?QUERY as `auth`; the parsed body (caller json_decrefs). */
static json_t *explain(const char *auth, const char *query, long want_status)
{
    th_response_t r;
    char *url = th_strf("http://127.0.0.1:%d/v1/gateway/route?%s", gw.port, query);
    const char *hdrs[] = {auth, NULL};
    th_http("GET", url, hdrs, NULL, 0, &r);
    free(url);
    if (r.status != want_status)
        fail_msg("explain %s: want HTTP %ld, got %ld: %s", query, want_status, r.status, r.body);
    json_t *root = th_json(&r);
    if (!root)
        fail_msg("explain %s: not JSON: %s", query, r.body);
    th_response_free(&r);
    return root;
}

/* ---- 1. a key-bound EU policy cannot be escaped ----------------------- */

typedef struct iso_case {
    const char *auth;   /* Authorization line */
    const char *header; /* an extra request header, or NULL */
    const char *body;
    long status;       /* 503 upstream_unavailable, or 403 policy_denied */
    const char *label; /* x-meridian-policy, also named in the message */
} iso_case_t;

static const iso_case_t iso_cases[] = {
    /* the key alone */
    {AUTH_EU, NULL, "{\"model\":\"geo\"}", 503, "eu-only"},
    {AUTH_EU, NULL, "{\"model\":\"geo\",\"stream\":true}", 503, "eu-only"},
    /* a permissive header policy is intersected with the key's, not substituted */
    {AUTH_EU, "x-meridian-policy: anywhere", "{\"model\":\"geo\"}", 503, "eu-only+anywhere"},
    /* the key's own policy in the header adds nothing */
    {AUTH_EU, "x-meridian-policy: eu-only", "{\"model\":\"geo\"}", 503, "eu-only"},
    /* a header policy that leaves nothing: 403, no attempt */
    {AUTH_EU, "x-meridian-policy: us-only", "{\"model\":\"geo\"}", 403, "eu-only+us-only"},
    /* provider.only naming only the forbidden hosts narrows to nothing */
    {AUTH_EU, NULL, "{\"model\":\"geo\",\"provider\":{\"only\":[\"us-host\",\"cn-host\"]}}", 403,
     "eu-only+request"},
    {AUTH_EU, "x-meridian-policy: anywhere",
     "{\"model\":\"geo\",\"provider\":{\"only\":[\"US-HOST\",\"cn-host\"]}}", 403,
     "eu-only+anywhere+request"},
    /* provider.only listing everything still only reaches the EU host */
    {AUTH_EU, NULL,
     "{\"model\":\"geo\",\"provider\":{\"only\":[\"us-host\",\"fr-host\",\"cn-host\"]}}", 503,
     "eu-only+request"},
    /* provider.order puts the forbidden hosts first: they are still not candidates */
    {AUTH_EU, NULL, "{\"model\":\"geo\",\"provider\":{\"order\":[\"us-host\",\"cn-host\"]}}", 503,
     "eu-only+request"},
    {AUTH_EU, "x-meridian-policy: anywhere",
     "{\"model\":\"geo\",\"provider\":{\"order\":[\"cn-host\",\"us-host\",\"fr-host\"],"
     "\"sort\":\"latency\"}}",
     503, "eu-only+anywhere+request"},
    /* ... and with allow_fallbacks false the order is a filter: nothing left */
    {AUTH_EU, NULL,
     "{\"model\":\"geo\",\"provider\":{\"order\":[\"us-host\",\"cn-host\"],"
     "\"allow_fallbacks\":false}}",
     403, "eu-only+request"},
    /* provider.ignore of the only allowed host */
    {AUTH_EU, NULL, "{\"model\":\"geo\",\"provider\":{\"ignore\":[\"fr-host\"]}}", 403,
     "eu-only+request"},
    /* fallback models on forbidden hosts are filtered like the route's targets */
    {AUTH_EU, NULL, "{\"model\":\"geo\",\"models\":[\"us-host/m-us\",\"cn-host/other\",\"pair\"]}",
     503, "eu-only"},
    {AUTH_EU, "x-meridian-policy: anywhere",
     "{\"model\":\"geo\",\"models\":[\"pair\"],\"provider\":{\"order\":[\"cn-host\"]},\"n\":1}",
     503, "eu-only+anywhere+request"},
    /* addressing a forbidden host directly */
    {AUTH_EU, NULL, "{\"model\":\"us-host/m-us\"}", 403, "eu-only"},
    {AUTH_EU, "x-meridian-policy: anywhere", "{\"model\":\"cn-host/anything\",\"stream\":true}",
     403, "eu-only+anywhere"},
    {AUTH_EU, NULL, "{\"model\":\"pair\",\"models\":[\"us-host/x\"]}", 403, "eu-only"},
    /* without the EU key: a key with no policy plus the header holds the same */
    {AUTH_OPS, "x-meridian-policy: eu-only", "{\"model\":\"geo\"}", 503, "eu-only"},
    {AUTH_OPS, "x-meridian-policy: eu-only",
     "{\"model\":\"geo\",\"provider\":{\"order\":[\"us-host\",\"cn-host\"]},"
     "\"models\":[\"cn-host/m-cn\"],\"n\":1}",
     503, "eu-only+request"},
    {AUTH_OPS, "x-meridian-policy: eu-only",
     "{\"model\":\"geo\",\"provider\":{\"only\":[\"us-host\",\"cn-host\"]}}", 403,
     "eu-only+request"},
};

static void test_eu_key_cannot_escape(void **state)
{
    enum { ROUNDS = 2 };
    const size_t n_cases = sizeof(iso_cases) / sizeof(iso_cases[0]);
    long n503 = 0, n403 = 0;
    char buf[256];
    (void)state;

    /* every EU host is down */
    assert_int_equal(th_mock_scenario(&mock_fr, "{\"status\":500}"), 0);
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < n_cases; i++) {
            const iso_case_t *c = &iso_cases[i];
            th_response_t r;
            chat(c->auth, c->header, c->body, &r);
            if (r.status != c->status)
                fail_msg("case %zu (%s%s%s): want %ld, got %ld: %s", i, c->header ? c->header : "",
                         c->header ? ", " : "", c->body, c->status, r.status, r.body);
            json_t *root = assert_error(
                &r, c->status, c->status == 503 ? "upstream_unavailable" : "policy_denied");
            const char *msg = err_message(root);
            char *under = th_strf("under policy %s", c->label);
            if (!strstr(msg, under))
                fail_msg("case %zu (%s): message does not say \"%s\": %s", i, c->body, under, msg);
            free(under);
            assert_header(&r, "x-meridian-policy", c->label);
            json_t *err = json_object_get(root, "error");
            if (c->status == 503) {
                /* exactly one attempt, on the FR host */
                json_t *att = json_object_get(err, "attempts");
                assert_int_equal(json_array_size(att), 1);
                assert_string_equal(
                    json_string_value(json_object_get(json_array_get(att, 0), "provider")),
                    "fr-host");
                assert_header(&r, "x-meridian-attempts", "1");
                assert_non_null(strstr(msg, "excluded by the policy"));
                n503++;
            } else {
                /* nothing was attempted; every target is listed with its reason */
                assert_null(th_header(&r, "x-meridian-attempts", buf, sizeof(buf)));
                json_t *ex = json_object_get(err, "excluded");
                assert_true(json_array_size(ex) >= 1);
                size_t k;
                json_t *x;
                json_array_foreach(ex, k, x)
                {
                    assert_true(strlen(json_string_value(json_object_get(x, "reason"))) > 0);
                    assert_string_equal(json_string_value(json_object_get(x, "kind")), "policy");
                }
                n403++;
            }
            json_decref(root);
            th_response_free(&r);
        }
    }
    long us = requests_of(&mock_us), fr = requests_of(&mock_fr), cn = requests_of(&mock_cn);
    print_message("%ld requests (%ld x 503 naming the policy, %ld x 403): US mock %ld, FR mock "
                  "%ld, CN mock %ld\n",
                  n503 + n403, n503, n403, us, fr, cn);
    assert_true(n503 + n403 >= 20);
    assert_int_equal(us, 0);
    assert_int_equal(cn, 0);
    assert_int_equal(fr, n503); /* one attempt per 503, none per 403 */

    /* the same request with the ops key and no policy does reach the US host:
     * the isolation above is the policy's doing */
    th_response_t r;
    chat(AUTH_OPS, NULL, "{\"model\":\"geo\"}", &r);
    assert_served_by(&r, "us-host", "1");
    assert_null(th_header(&r, "x-meridian-policy", buf, sizeof(buf)));
    th_response_free(&r);
    assert_int_equal(requests_of(&mock_us), 1);
}

static void test_gateway_keys(void **state)
{
    static const char *const bad_auth[] = {
        "Authorization: Bearer " KEY_WRONG,
        /* the digest in the file is not a key */
        "Authorization: Bearer " KEY_EU_SHA, "Authorization: Basic " KEY_EU,
        "Authorization: Bearer ", NULL, /* no Authorization at all */
    };
    char url[256];
    (void)state;

    for (size_t i = 0; i < sizeof(bad_auth) / sizeof(bad_auth[0]); i++) {
        th_response_t r;
        chat(bad_auth[i], NULL, "{\"model\":\"geo\"}", &r);
        json_t *root = assert_error(&r, 401, "invalid_api_key");
        assert_null(strstr(r.body, KEY_WRONG));
        assert_null(strstr(r.body, KEY_EU));
        assert_null(strstr(r.body, KEY_EU_SHA));
        assert_null(strstr(r.headers, KEY_WRONG));
        json_decref(root);
        th_response_free(&r);
    }
    /* explain is authenticated like any request */
    th_response_t r;
    const char *hdrs[] = {"Authorization: Bearer " KEY_WRONG, NULL};
    th_http("GET", th_url_buf(&gw, "/v1/gateway/route?model=geo", url, sizeof(url)), hdrs, NULL, 0,
            &r);
    json_decref(assert_error(&r, 401, "invalid_api_key"));
    assert_null(strstr(r.body, KEY_WRONG));
    th_response_free(&r);
    /* an unknown header policy is an error, never ignored */
    chat(AUTH_EU, "x-meridian-policy: eu-onyl", "{\"model\":\"geo\"}", &r);
    json_t *root = assert_error(&r, 400, "policy_not_found");
    assert_non_null(strstr(err_message(root), "eu-onyl"));
    json_decref(root);
    th_response_free(&r);
    /* the valid key works, and its secret is not forwarded upstream */
    chat(AUTH_EU, NULL, "{\"model\":\"geo\"}", &r);
    assert_served_by(&r, "fr-host", "1");
    assert_header(&r, "x-meridian-policy", "eu-only");
    th_response_free(&r);
    json_t *seen = th_mock_requests(&mock_fr);
    char *dump = json_dumps(seen, 0);
    assert_null(strstr(dump, KEY_EU));
    assert_non_null(strstr(dump, "Bearer sk-fr-host"));
    free(dump);
    json_decref(seen);
    assert_int_equal(requests_of(&mock_us) + requests_of(&mock_cn), 0);
    assert_int_equal(requests_of(&mock_fr), 1);
}

/* ---- 2. max_vendor_share ---------------------------------------------- */

static void test_vendor_share_cap(void **state)
{
    enum { N = 1000, CONTROL = 20 };
    CURL *client = curl_easy_init();
    th_http_opts_t keep = {.easy = client};
    int us = 0, cn = 0, longest_run = 0, run = 0;
    char prev[64] = "", who[64];
    (void)state;

    /* control: without the cap, priority sends everything to the US host */
    for (int i = 0; i < CONTROL; i++) {
        th_response_t r;
        chat_ex(&keep, AUTH_OPS, NULL, NULL, "{\"model\":\"pair\"}", &r);
        assert_served_by(&r, "us-host", "1");
        th_response_free(&r);
    }
    assert_int_equal(th_mock_reset(&mock_us), 0);

    for (int i = 0; i < N; i++) {
        th_response_t r;
        chat_ex(&keep, AUTH_OPS, "x-meridian-policy: capped", NULL, "{\"model\":\"pair\"}", &r);
        if (r.status != 200)
            fail_msg("request %d: %ld %s", i, r.status, r.body);
        assert_header(&r, "x-meridian-attempts", "1");
        if (i == 0)
            assert_header(&r, "x-meridian-policy", "capped");
        const char *p = hdr(&r, "x-meridian-provider", who, sizeof(who));
        if (!strcmp(p, "us-host"))
            us++;
        else if (!strcmp(p, "cn-host"))
            cn++;
        else
            fail_msg("request %d served by %s", i, p);
        run = strcmp(p, prev) ? 1 : run + 1;
        if (run > longest_run)
            longest_run = run;
        snprintf(prev, sizeof(prev), "%s", p);
        th_response_free(&r);
    }
    curl_easy_cleanup(client);
    double share = (double)us / N;
    print_message("max_vendor_share 0.5 over %d requests: preferred vendor (usco) %d = %.3f, "
                  "other (cnco) %d = %.3f; longest run on one vendor %d\n",
                  N, us, share, cn, (double)cn / N, longest_run);
    assert_int_equal(us + cn, N);
    assert_true(fabs(share - 0.5) <= 0.05);
    /* the mocks agree with the headers */
    assert_int_equal(requests_of(&mock_us), us);
    assert_int_equal(requests_of(&mock_cn), cn);
}

/* ---- 3. fallback_diversity -------------------------------------------- */

static void test_fallback_diversity_vendor(void **state)
{
    th_response_t r;
    (void)state;

    /* control: without the policy, a1's failure falls over to a2 (same vendor) */
    assert_int_equal(th_mock_scenario(&mock_us, "{\"status\":500,\"count\":1}"), 0);
    chat(AUTH_OPS, NULL, "{\"model\":\"div\"}", &r);
    assert_served_by(&r, "a2", "2");
    th_response_free(&r);
    assert_int_equal(requests_of(&mock_fr), 1);
    assert_int_equal(requests_of(&mock_cn), 0);

    /* under fallback_diversity vendor, attempt 2 goes to vendor-b */
    assert_int_equal(reset_mocks(NULL), 0);
    assert_int_equal(th_mock_scenario(&mock_us, "{\"status\":500,\"count\":1}"), 0);
    chat(AUTH_OPS, "x-meridian-policy: diverse", "{\"model\":\"div\"}", &r);
    assert_served_by(&r, "b1", "2");
    assert_header(&r, "x-meridian-policy", "diverse");
    assert_header(&r, "x-meridian-model", "m-b1");
    th_response_free(&r);
    long a1 = requests_of(&mock_us), a2 = requests_of(&mock_fr), b1 = requests_of(&mock_cn);
    print_message("fallback_diversity vendor: attempt 1 a1 (vendor-a) %ld, a2 (vendor-a) %ld, "
                  "b1 (vendor-b) %ld requests\n",
                  a1, a2, b1);
    assert_int_equal(a1, 1);
    assert_int_equal(a2, 0);
    assert_int_equal(b1, 1);
    assert_recorded_body(&mock_us, 0, "{\"model\":\"m-a1\"}");
    assert_recorded_body(&mock_cn, 0, "{\"model\":\"m-b1\"}");

    /* explain shows the reordered chain */
    json_t *ex = explain(AUTH_OPS, "model=div&policy=diverse", 200);
    json_t *cands = json_object_get(ex, "candidates");
    assert_int_equal(json_array_size(cands), 3);
    const char *want[] = {"a1", "b1", "a2"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(cands, i), "provider")), want[i]);
    assert_string_equal(json_string_value(json_object_get(ex, "fallback_diversity")), "vendor");
    json_decref(ex);
}

/* A number member, or -1 when absent. */
static double num_or(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : -1.0;
}

/* ---- 4. least_latency ------------------------------------------------- */

static void test_least_latency(void **state)
{
    enum { WARMUP = 20, N = 200 };
    CURL *client = curl_easy_init();
    th_http_opts_t keep = {.easy = client};
    int quick = 0, slow = 0;
    double quick_ms = 0, slow_ms = 0;
    char who[64];
    (void)state;

    /* "slow" (route order first) answers its head 50 ms late, every time */
    assert_int_equal(th_mock_scenario(&mock_fr, "{\"headers_delay_ms\":50}"), 0);
    for (int i = 0; i < WARMUP + N; i++) {
        th_response_t r;
        chat_ex(&keep, AUTH_OPS, "x-meridian-policy: fastest", NULL, "{\"model\":\"lat\"}", &r);
        if (r.status != 200)
            fail_msg("request %d: %ld %s", i, r.status, r.body);
        const char *p = hdr(&r, "x-meridian-provider", who, sizeof(who));
        if (i >= WARMUP) {
            if (!strcmp(p, "quick"))
                quick++, quick_ms += r.t_total_ms;
            else if (!strcmp(p, "slow"))
                slow++, slow_ms += r.t_total_ms;
            else
                fail_msg("request %d served by %s", i, p);
        }
        th_response_free(&r);
    }
    curl_easy_cleanup(client);

    json_t *ex = explain(AUTH_OPS, "model=lat&policy=fastest", 200);
    json_t *cands = json_object_get(ex, "candidates");
    json_t *c0 = json_array_get(cands, 0), *c1 = json_array_get(cands, 1);
    print_message("least_latency after %d warm-up: quick %d/%d (%.1f%%, mean %.1f ms), slow %d "
                  "(mean %.1f ms); EWMA ttfb %s %.1f ms, %s %.1f ms (-1: none)\n",
                  WARMUP, quick, N, 100.0 * quick / N, quick ? quick_ms / quick : 0.0, slow,
                  slow ? slow_ms / slow : 0.0, json_string_value(json_object_get(c0, "provider")),
                  num_or(c0, "ttfb_ms"), json_string_value(json_object_get(c1, "provider")),
                  num_or(c1, "ttfb_ms"));
    assert_int_equal(quick + slow, N);
    assert_true(quick * 10 >= N * 9);
    assert_string_equal(json_string_value(json_object_get(ex, "strategy")), "least_latency");
    assert_string_equal(json_string_value(json_object_get(c0, "provider")), "quick");
    assert_true(json_is_number(json_object_get(c0, "ttfb_ms")));
    assert_true(json_is_number(json_object_get(c1, "ttfb_ms")));
    assert_true(json_number_value(json_object_get(c1, "ttfb_ms")) >= 50.0);
    json_decref(ex);
    assert_int_equal(requests_of(&mock_us) + requests_of(&mock_fr), WARMUP + N);
}

/* ---- 5. explain ------------------------------------------------------- */

/* The excluded entry for `provider`, or fail. */
static json_t *excluded_entry(json_t *ex, const char *provider)
{
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(ex, "excluded"), i, x)
    {
        if (!strcmp(json_string_value(json_object_get(x, "provider")), provider))
            return x;
    }
    char *dump = json_dumps(ex, 0);
    fail_msg("%s is not in excluded: %s", provider, dump);
    free(dump);
    return NULL;
}

static void assert_excluded(json_t *ex, const char *provider, const char *rule, const char *policy,
                            const char *reason)
{
    json_t *x = excluded_entry(ex, provider);
    assert_string_equal(json_string_value(json_object_get(x, "kind")), "policy");
    assert_string_equal(json_string_value(json_object_get(x, "rule")), rule);
    assert_string_equal(json_string_value(json_object_get(x, "policy")), policy);
    assert_string_equal(json_string_value(json_object_get(x, "reason")), reason);
}

static void assert_only_candidate(json_t *ex, const char *provider)
{
    json_t *cands = json_object_get(ex, "candidates");
    if (json_array_size(cands) != 1) {
        char *dump = json_dumps(ex, 0);
        fail_msg("want exactly %s as candidate: %s", provider, dump);
        free(dump);
    }
    json_t *c = json_array_get(cands, 0);
    assert_string_equal(json_string_value(json_object_get(c, "provider")), provider);
}

static void test_explain(void **state)
{
    (void)state;

    /* header-chosen policy */
    json_t *ex = explain(AUTH_OPS, "model=geo&policy=eu-only", 200);
    assert_int_equal(json_integer_value(json_object_get(ex, "status")), 200);
    assert_string_equal(json_string_value(json_object_get(ex, "policy")), "eu-only");
    assert_string_equal(json_string_value(json_object_get(ex, "route")), "geo");
    assert_only_candidate(ex, "fr-host");
    json_t *c = json_array_get(json_object_get(ex, "candidates"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "jurisdiction")), "FR");
    assert_string_equal(json_string_value(json_object_get(c, "region")), "eu");
    assert_int_equal(json_integer_value(json_object_get(ex, "excluded_total")), 2);
    assert_excluded(ex, "us-host", "allow.region", "eu-only",
                    "region us not in [eu] (policy eu-only)");
    assert_excluded(ex, "cn-host", "allow.region", "eu-only",
                    "region cn not in [eu] (policy eu-only)");
    json_t *pol = json_array_get(json_object_get(ex, "policies"), 0);
    assert_string_equal(json_string_value(json_object_get(pol, "layer")), "header");
    assert_int_equal(strlen(json_string_value(json_object_get(pol, "sha256"))), 64);
    json_decref(ex);

    /* the key's policy applies without asking */
    ex = explain(AUTH_EU, "model=geo", 200);
    assert_string_equal(json_string_value(json_object_get(ex, "policy")), "eu-only");
    pol = json_array_get(json_object_get(ex, "policies"), 0);
    assert_string_equal(json_string_value(json_object_get(pol, "layer")), "key");
    assert_only_candidate(ex, "fr-host");
    json_decref(ex);

    /* jurisdiction rules name the jurisdiction */
    ex = explain(AUTH_OPS, "model=geo&policy=no-cn-no-us", 200);
    assert_only_candidate(ex, "fr-host");
    assert_excluded(ex, "us-host", "deny.jurisdiction", "no-cn-no-us",
                    "jurisdiction US denied (policy no-cn-no-us)");
    assert_excluded(ex, "cn-host", "deny.jurisdiction", "no-cn-no-us",
                    "jurisdiction CN denied (policy no-cn-no-us)");
    json_decref(ex);

    /* a request policy cannot widen the key's: explained as a 403 */
    ex = explain(AUTH_EU, "model=geo&policy=us-only", 200);
    assert_int_equal(json_integer_value(json_object_get(ex, "status")), 403);
    assert_int_equal(json_array_size(json_object_get(ex, "candidates")), 0);
    assert_string_equal(json_string_value(json_object_get(ex, "policy")), "eu-only+us-only");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ex, "error"), "code")),
                        "policy_denied");
    assert_excluded(ex, "us-host", "allow.region", "eu-only",
                    "region us not in [eu] (policy eu-only)");
    assert_excluded(ex, "fr-host", "allow.region", "us-only",
                    "region eu not in [us] (policy us-only)");
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(ex, "excluded"), i, x)
    {
        print_message("explain geo, key eu-only + policy us-only: %s/%s excluded: %s\n",
                      json_string_value(json_object_get(x, "provider")),
                      json_string_value(json_object_get(x, "model")),
                      json_string_value(json_object_get(x, "reason")));
    }
    json_decref(ex);

    /* without a policy, the US host is first */
    ex = explain(AUTH_OPS, "model=geo", 200);
    assert_string_equal(json_string_value(json_object_get(ex, "policy")), "");
    assert_int_equal(json_array_size(json_object_get(ex, "candidates")), 3);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(ex, "candidates"), 0), "provider")),
                        "us-host");
    json_decref(ex);

    /* errors */
    ex = explain(AUTH_OPS, "model=geo&policy=nope", 400);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ex, "error"), "code")),
                        "policy_not_found");
    json_decref(ex);
    ex = explain(AUTH_OPS, "model=nope", 404);
    json_decref(ex);

    /* explaining never calls an upstream */
    assert_int_equal(requests_of(&mock_us), 0);
    assert_int_equal(requests_of(&mock_fr), 0);
    assert_int_equal(requests_of(&mock_cn), 0);
}

/* ---- 6. provider.order and models end to end -------------------------- */

static void test_order_and_models(void **state)
{
    th_response_t r;
    (void)state;

    /* provider.order puts cn-host first; gateway-only members are stripped */
    chat(AUTH_OPS, NULL,
         "{\"provider\":{\"order\":[\"cn-host\",\"fr-host\"]},\"model\":\"geo\",\"n\":1}", &r);
    assert_served_by(&r, "cn-host", "1");
    assert_header(&r, "x-meridian-policy", "request");
    th_response_free(&r);
    assert_recorded_body(&mock_cn, 0, "{\"model\":\"m-cn\",\"n\":1}");
    assert_int_equal(requests_of(&mock_us), 0);

    /* ... then fr-host (the order's second), not us-host (the route's first) */
    assert_int_equal(reset_mocks(NULL), 0);
    assert_int_equal(th_mock_scenario(&mock_cn, "{\"status\":503,\"count\":1}"), 0);
    chat(AUTH_OPS, NULL,
         "{\"model\":\"geo\",\"provider\":{\"order\":[\"CN-HOST\",\"fr-host\"],"
         "\"allow_fallbacks\":true},\"temperature\":0.5}",
         &r);
    assert_served_by(&r, "fr-host", "2");
    th_response_free(&r);
    assert_int_equal(requests_of(&mock_us), 0);
    assert_recorded_body(&mock_cn, 0, "{\"model\":\"m-cn\",\"temperature\":0.5}");
    assert_recorded_body(&mock_fr, 0, "{\"model\":\"m-fr\",\"temperature\":0.5}");

    /* models: the fallback model is tried after the model's own candidate */
    assert_int_equal(reset_mocks(NULL), 0);
    assert_int_equal(th_mock_scenario(&mock_fr, "{\"status\":500,\"count\":1}"), 0);
    chat(AUTH_OPS, NULL,
         "{\"model\":\"fr-host/m-x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
         "\"models\":[\"cn-host/m-y\",\"geo\"]}",
         &r);
    assert_served_by(&r, "cn-host", "2");
    assert_header(&r, "x-meridian-model", "m-y");
    assert_non_null(strstr(r.body, "Hello from cn"));
    th_response_free(&r);
    assert_recorded_body(
        &mock_fr, 0, "{\"model\":\"m-x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_recorded_body(
        &mock_cn, 0, "{\"model\":\"m-y\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_int_equal(requests_of(&mock_us), 0);

    /* a route's candidates first (both failing), then the fallback model */
    assert_int_equal(reset_mocks(NULL), 0);
    assert_int_equal(th_mock_scenario(&mock_us, "{\"status\":500}"), 0);
    assert_int_equal(th_mock_scenario(&mock_cn, "{\"status\":502}"), 0);
    chat(AUTH_OPS, NULL, "{\"model\":\"pair\",\"models\":[\"fr-host/m-z\"],\"stream\":true}", &r);
    assert_served_by(&r, "fr-host", "3");
    assert_non_null(strstr(r.body, "[DONE]"));
    th_response_free(&r);
    char *body = recorded_body(&mock_fr, 0);
    assert_null(strstr(body, "\"models\""));
    assert_non_null(strstr(body, "\"model\":\"m-z\""));
    free(body);
    assert_int_equal(requests_of(&mock_us), 1);
    assert_int_equal(requests_of(&mock_cn), 1);

    /* an unknown fallback model is a 404 on param models, before any attempt */
    assert_int_equal(reset_mocks(NULL), 0);
    chat(AUTH_OPS, NULL, "{\"model\":\"geo\",\"models\":[\"nope\"]}", &r);
    json_t *root = assert_error(&r, 404, "model_not_found");
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "error"), "param")),
                        "models");
    json_decref(root);
    th_response_free(&r);
    assert_int_equal(requests_of(&mock_us) + requests_of(&mock_fr) + requests_of(&mock_cn), 0);
}

/* ---- gateway-only members in any position ----------------------------- */

/*
 * OpenRouter clients put `provider` and `models` anywhere in the body. Each
 * body below must reach the upstream as valid JSON without those members.
 * Bodies whose stripped members are adjacent to the end of the object, or
 * come first in a stream (where stream_options is inserted after '{'), made
 * the openai adapter compute overlapping edits (see the report); on a fresh
 * gateway so that a crash here cannot take the other tests with it.
 */
static void test_stripped_members_any_position(void **state)
{
    static const struct {
        const char *body, *upstream;
    } cases[] = {
        {"{\"model\":\"fr-host/m\",\"models\":[\"cn-host/m\"],\"provider\":{\"sort\":\"price\"}}",
         "{\"model\":\"m\"}"},
        {"{\"model\":\"fr-host/m\",\"provider\":{\"sort\":\"price\"},\"models\":[\"cn-host/m\"]}",
         "{\"model\":\"m\"}"},
        {"{\"n\":1,\"provider\":{\"zdr\":false},\"model\":\"fr-host/m\",\"models\":[\"geo\"]}",
         "{\"n\":1,\"model\":\"m\"}"},
        {"{\"provider\":{\"zdr\":false},\"model\":\"fr-host/m\",\"stream\":true}",
         "{\"stream_options\":{\"include_usage\":true},\"model\":\"m\",\"stream\":true}"},
        {"{\"models\":[\"geo\"],\"stream\":true,\"model\":\"fr-host/m\"}",
         "{\"stream_options\":{\"include_usage\":true},\"stream\":true,\"model\":\"m\"}"},
    };
    th_proc_t d = {0};
    char *cfg = gateway_config();
    const char *args[] = {"--workers", "1", NULL};
    char url[256];
    (void)state;

    assert_int_equal(th_start_meridian_ex(&d, cfg, args, NULL), 0);
    free(cfg);
    const char *hdrs[] = {AUTH_OPS, NULL};
    th_url_buf(&d, "/v1/chat/completions", url, sizeof(url));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        th_response_t r;
        th_http("POST", url, hdrs, cases[i].body, strlen(cases[i].body), &r);
        if (r.status != 200) {
            char *log = th_read_log(&d);
            const char *crash = log ? strstr(log, "ERROR") : NULL;
            print_error("case %zu %s: got %ld (curl %d) %s\ngateway: %.300s\n", i, cases[i].body,
                        r.status, r.curl_code, r.body, crash ? crash : "(no error in its log)");
            free(log);
            th_response_free(&r);
            th_stop(&d);
            fail();
        }
        assert_header(&r, "x-meridian-provider", "fr-host");
        th_response_free(&r);
        assert_recorded_body(&mock_fr, i, cases[i].upstream);
    }
    assert_int_equal(th_stop(&d), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_eu_key_cannot_escape, reset_mocks),
        cmocka_unit_test_setup(test_gateway_keys, reset_mocks),
        cmocka_unit_test_setup(test_vendor_share_cap, reset_mocks),
        cmocka_unit_test_setup(test_fallback_diversity_vendor, reset_mocks),
        cmocka_unit_test_setup(test_least_latency, reset_mocks),
        cmocka_unit_test_setup(test_explain, reset_mocks),
        cmocka_unit_test_setup(test_order_and_models, reset_mocks),
        cmocka_unit_test_setup(test_stripped_members_any_position, reset_mocks),
    };
    th_init();
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    th_cleanup();
    return rc;
}

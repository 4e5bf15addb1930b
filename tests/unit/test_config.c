/*
 * config loading: every validation error (table-driven, checked against the
 * exact JSON path), defaults, disabled providers, listen parsing, the
 * --check table, file handling and the shipped config/meridian.json.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <unistd.h>

#include "meridian/config.h"

#ifndef MERIDIAN_SOURCE_DIR
#define MERIDIAN_SOURCE_DIR "."
#endif

/* A valid provider object to build cases from. */
#define PA "\"a\":{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:1/v1\"}"
#define PROVS "\"providers\":{" PA "}"
/* A provider whose fields are spliced in. */
#define PROV_WITH(fields)                                                                          \
    "{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"http://h/v1\"," fields "}}}"
#define ROUTE_WITH(route) "{" PROVS ",\"routes\":{\"chat\":" route "}}"
#define TARGET_WITH(target) ROUTE_WITH("{\"targets\":[" target "]}")
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int setup_env(void **state)
{
    (void)state;
    setenv("MR_T_KEY", "sk-test-secret-value", 1);
    setenv("MR_T_EMPTY", "", 1);
    unsetenv("MR_T_UNSET");
    unsetenv("MR_T_UNSET_URL");
    return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle)) {
        print_error("\"%s\"\n  does not contain\n\"%s\"\n", hay ? hay : "(null)", needle);
        fail();
    }
}

static void assert_not_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle)) {
        print_error("\"%s\"\n  unexpectedly contains\n\"%s\"\n", hay, needle);
        fail();
    }
}

static mr_config_t *load_ok(const char *json)
{
    char err[1024] = "";
    mr_config_t *cfg = NULL;

    if (mr_config_load_string(json, "t.json", &cfg, err, sizeof(err)) != 0) {
        print_error("unexpected load error: %s\n", err);
        fail();
    }
    assert_non_null(cfg);
    return cfg;
}

/* ------------------------------------------------------------------------ */

typedef struct err_case {
    const char *json;
    const char *want; /* substring of the message, after "x.json: " */
} err_case_t;

static const err_case_t err_cases[] = {
    /* document level */
    {"{\"providers\": {", "x.json:1:"},
    {"{\"providers\": {}\n,\n}", "x.json:3:1: invalid JSON: "},
    {"{" PROVS "," PROVS "}", "invalid JSON: duplicate object key"},
    {"", "x.json:"},
    {"[]", "x.json: the top level must be a JSON object (got array)"},
    {"{\"provders\":{}}", "x.json: provders: unknown key (did you mean \"providers\"?)"},
    {"{" PROVS ",\"Routes\":{}}", "x.json: Routes: unknown key (did you mean \"routes\"?)"},
    {"{" PROVS ",\"zzzzzzzzzz\":1}", "x.json: zzzzzzzzzz: unknown key"},
    {"{" PROVS ",\"$comment\":1}", "x.json: $comment: must be a string (got integer)"},
    {"{" PROVS ",\"max_attempts\":0}", "x.json: max_attempts: must be an integer from 1 to 16 "
                                       "(got 0)"},
    {"{" PROVS ",\"max_attempts\":17}", "max_attempts: must be an integer from 1 to 16 (got 17)"},
    {"{" PROVS ",\"max_attempts\":\"3\"}", "max_attempts: must be an integer from 1 to 16 (got "
                                           "string)"},
    {"{" PROVS ",\"max_attempts\":2.5}", "max_attempts: must be an integer from 1 to 16 (got 2.5)"},
    {"{" PROVS ",\"max_attempts\":null}", "max_attempts: must be an integer from 1 to 16 (got "
                                          "null)"},
    {"{" PROVS ",\"max_attempts\":99999999999999999999}", "invalid JSON"},

    /* listen */
    {"{" PROVS ",\"listen\":8080}", "x.json: listen: must be a string (got integer)"},
    {"{" PROVS ",\"listen\":\"localhost:8080\"}",
     "x.json: listen: invalid address \"localhost:8080\": host must be an IPv4 address"},
    {"{" PROVS ",\"listen\":\"127.0.0.1\"}", "listen: invalid address \"127.0.0.1\": missing "
                                             "\":PORT\""},
    {"{" PROVS ",\"listen\":\"127.0.0.1:65536\"}", "port must be a number from 0 to 65535"},
    {"{" PROVS ",\"listen\":\"127.0.0.1:\"}", "port must be a number from 0 to 65535"},
    {"{" PROVS ",\"listen\":\"127.0.0.1:-1\"}", "port must be a number from 0 to 65535"},
    {"{" PROVS ",\"listen\":\"127.0.0.1:80x\"}", "port must be a number from 0 to 65535"},
    {"{" PROVS ",\"listen\":\"::1:8080\"}", "IPv6 addresses must be bracketed"},
    {"{" PROVS ",\"listen\":\"[::1]8080\"}", "missing \":PORT\" after \"]\""},
    {"{" PROVS ",\"listen\":\"[::1:8080\"}", "missing \"]\""},
    {"{" PROVS ",\"listen\":\"[::g]:8080\"}", "host is not a valid IPv6 address"},
    {"{" PROVS ",\"listen\":\":8080\"}", "listen: invalid address \":8080\": missing host"},
    {"{" PROVS ",\"listen\":\"${MR_T_UNSET}\"}", "listen: ${MR_T_UNSET} is not set"},

    /* timeouts */
    {"{" PROVS ",\"timeouts\":5}", "x.json: timeouts: must be an object (got integer)"},
    {"{" PROVS ",\"timeouts\":{\"connect\":1}}",
     "x.json: timeouts.connect: unknown key (did you mean \"connect_ms\"?)"},
    {"{" PROVS ",\"timeouts\":{\"connect_ms\":0}}",
     "x.json: timeouts.connect_ms: must be an integer from 1 to 600000 (got 0)"},
    {"{" PROVS ",\"timeouts\":{\"first_byte_ms\":3600001}}",
     "timeouts.first_byte_ms: must be an integer from 1 to 3600000 (got 3600001)"},
    {"{" PROVS ",\"timeouts\":{\"request_ms\":86400001}}",
     "timeouts.request_ms: must be an integer from 1 to 86400000 (got 86400001)"},
    {"{" PROVS ",\"timeouts\":{\"stream_idle_ms\":-1}}",
     "timeouts.stream_idle_ms: must be an integer from 1 to 3600000 (got -1)"},
    {"{" PROVS ",\"timeouts\":{\"client_idle_s\":86401}}",
     "timeouts.client_idle_s: must be an integer from 1 to 86400 (got 86401)"},
    {"{" PROVS ",\"timeouts\":{\"drain_ms\":0}}",
     "timeouts.drain_ms: must be an integer from 1 to 3600000 (got 0)"},
    {"{" PROVS ",\"timeouts\":{\"drain_ms\":true}}",
     "timeouts.drain_ms: must be an integer from 1 to 3600000 (got boolean)"},

    /* limits */
    {"{" PROVS ",\"limits\":[]}", "x.json: limits: must be an object (got array)"},
    {"{" PROVS ",\"limits\":{\"max_body\":1}}",
     "limits.max_body: unknown key (did you mean \"max_body_bytes\"?)"},
    {"{" PROVS ",\"limits\":{\"max_body_bytes\":1023}}",
     "limits.max_body_bytes: must be an integer from 1024 to 1073741824 (got 1023)"},
    {"{" PROVS ",\"limits\":{\"max_header_bytes\":1048577}}",
     "limits.max_header_bytes: must be an integer from 1024 to 1048576 (got 1048577)"},
    {"{" PROVS ",\"limits\":{\"max_response_bytes\":1073741825}}",
     "limits.max_response_bytes: must be an integer from 1024 to 1073741824"},
    {"{" PROVS ",\"limits\":{\"stream_buffer_bytes\":67108865}}",
     "limits.stream_buffer_bytes: must be an integer from 1024 to 67108864"},
    {"{" PROVS ",\"limits\":{\"max_connections\":0}}",
     "limits.max_connections: must be an integer from 1 to 1000000 (got 0)"},

    /* providers */
    {"{}", "x.json: providers: missing (required)"},
    {"{\"providers\":[]}", "x.json: providers: must be an object mapping provider names to "
                           "providers (got array)"},
    {"{\"providers\":{}}", "x.json: providers: must define at least one provider"},
    {"{\"providers\":{\"$comment\":\"only a comment\"}}", "providers: must define at least one "
                                                          "provider"},
    {"{\"providers\":{\"a\":1}}", "x.json: providers.a: must be an object (got integer)"},
    {"{\"providers\":{\"a b\":{}}}", "x.json: providers[\"a b\"]: invalid provider name"},
    {"{\"providers\":{\"a/b\":{}}}", "x.json: providers.a/b: invalid provider name"},
    {"{\"providers\":{\"\":{}}}", "x.json: providers[\"\"]: invalid provider name"},
    {"{\"providers\":{\"-a\":{}}}", "x.json: providers.-a: invalid provider name"},
    {"{\"providers\":{\"a\":{}}}", "x.json: providers.a.kind: missing (required)"},
    {PROV_WITH("\"kindd\":1"), "x.json: providers.a.kindd: unknown key (did you mean \"kind\"?)"},
    {PROV_WITH("\"http2\":true"),
     "x.json: providers.a.http2: needs an https base_url (HTTP/2 is negotiated with TLS ALPN; "
     "cleartext HTTP/2 is not supported)"},
    {PROV_WITH("\"http2\":1"), "x.json: providers.a.http2: must be true or false (got integer)"},
    {PROV_WITH("\"ca_file\":\"/nonexistent/ca.pem\""),
     "x.json: providers.a.ca_file: /nonexistent/ca.pem: No such file or directory"},
    {"{\"access_log\":1," PROVS "}", "x.json: access_log: must be a string (got integer)"},
    {"{\"audit\":{}," PROVS "}", "x.json: audit.path: missing (required)"},
    {"{\"audit\":{\"path\":\"/x\",\"bodys\":true}," PROVS "}",
     "x.json: audit.bodys: unknown key (did you mean \"bodies\"?)"},
    {"{\"audit\":{\"path\":\"/x\",\"queue_bytes\":10}," PROVS "}",
     "x.json: audit.queue_bytes: must be"},
    {"{\"public_metrics\":\"yes\"," PROVS "}",
     "x.json: public_metrics: must be true or false (got string)"},
    {PROV_WITH("\"apikey\":\"x\""),
     "x.json: providers.a.apikey: unknown key (did you mean \"api_key\"?)"},
    {PROV_WITH("\"$comment\":[]"), "x.json: providers.a.$comment: must be a string (got array)"},
    {"{\"providers\":{\"mistral\":{\"kind\":\"opnai\",\"base_url\":\"http://h\"}}}",
     "x.json: providers.mistral.kind: must be one of openai, anthropic, gemini, azure (got "
     "\"opnai\")"},
    {"{\"providers\":{\"a\":{\"kind\":\"a\\nb\",\"base_url\":\"http://h\"}}}",
     "providers.a.kind: must be one of openai, anthropic, gemini, azure (got \"a\\x0ab\")"},
    {"{\"providers\":{\"a\":{\"kind\":7,\"base_url\":\"http://h\"}}}",
     "x.json: providers.a.kind: must be a string (got integer)"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\"}}}",
     "x.json: providers.a.base_url: missing (required)"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"ftp://h\"}}}",
     "x.json: providers.a.base_url: must start with http:// or https:// (got \"ftp://h\")"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"https://\"}}}",
     "providers.a.base_url: missing host"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"https:///v1\"}}}",
     "providers.a.base_url: missing host"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"https://h/v1?x=1\"}}}",
     "providers.a.base_url: must not contain a query or fragment"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"https://u:p@h/v1\"}}}",
     "providers.a.base_url: must not contain credentials"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"https://h /v1\"}}}",
     "providers.a.base_url: must not contain spaces or control characters"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"${MR_T_UNSET_URL}/v1\"}}}",
     "x.json: providers.a.base_url: ${MR_T_UNSET_URL} is not set"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"${MR_T_UNSET_URL\"}}}",
     "x.json: providers.a.base_url: unterminated \"${\" at offset 0"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":[]}}}",
     "providers.a.base_url: must be a string (got array)"},
    {PROV_WITH("\"api_key\":false"), "x.json: providers.a.api_key: must be a string (got boolean)"},
    {PROV_WITH("\"api_key\":\"\""), "x.json: providers.a.api_key: must not be empty"},
    {PROV_WITH("\"api_key\":\"${}\""), "x.json: providers.a.api_key: empty variable name"},
    {PROV_WITH("\"api_key\":\"sk\\tx\""),
     "x.json: providers.a.api_key: must not contain control characters"},
    {PROV_WITH("\"vendor\":\"\""), "x.json: providers.a.vendor: must not be empty"},
    {PROV_WITH("\"vendor\":3"), "x.json: providers.a.vendor: must be a string (got integer)"},
    {PROV_WITH("\"vendor\":\"${MR_T_UNSET}\""), "providers.a.vendor: ${MR_T_UNSET} is not set"},
    {PROV_WITH("\"region\":\"0123456789012345678901234567890123456789012345678901234567890123"
               "4\""),
     "x.json: providers.a.region: must be at most 64 bytes"},
    {PROV_WITH("\"region\":\"e\\u0001u\""),
     "providers.a.region: must not contain control characters"},
    {PROV_WITH("\"jurisdiction\":\"FRA\""),
     "x.json: providers.a.jurisdiction: must be a two-letter ISO 3166-1 country code such as "
     "\"FR\" (got \"FRA\")"},
    {PROV_WITH("\"jurisdiction\":\"F1\""), "providers.a.jurisdiction: must be a two-letter"},
    {PROV_WITH("\"jurisdiction\":null"), "providers.a.jurisdiction: must be a string (got null)"},
    {PROV_WITH("\"models\":\"m\""),
     "x.json: providers.a.models: must be an array of strings (got string)"},
    {PROV_WITH("\"models\":[\"m\",2]"), "x.json: providers.a.models[1]: must be a string (got "
                                        "integer)"},
    {PROV_WITH("\"models\":[\"\"]"), "x.json: providers.a.models[0]: must not be empty"},
    {PROV_WITH("\"models\":[\"${MR_T_UNSET}\"]"),
     "providers.a.models[0]: ${MR_T_UNSET} is not set"},

    /* routes */
    {"{" PROVS ",\"routes\":[]}",
     "x.json: routes: must be an object mapping route names to routes (got array)"},
    {ROUTE_WITH("\"x\""), "x.json: routes.chat: must be an object with \"targets\" (got string)"},
    {"{" PROVS ",\"routes\":{\"my chat\":{}}}", "x.json: routes[\"my chat\"]: invalid route name"},
    {"{" PROVS ",\"routes\":{\"\":{}}}", "x.json: routes[\"\"]: invalid route name"},
    {ROUTE_WITH("{\"target\":[]}"), "x.json: routes.chat.target: unknown key (did you mean "
                                    "\"targets\"?)"},
    {ROUTE_WITH("{}"), "x.json: routes.chat.targets: missing (required)"},
    {ROUTE_WITH("{\"targets\":{}}"), "x.json: routes.chat.targets: must be an array"},
    {ROUTE_WITH("{\"targets\":[]}"), "x.json: routes.chat.targets: must list at least one target"},
    {ROUTE_WITH("{\"max_attempts\":0,\"targets\":[{\"provider\":\"a\",\"model\":\"m\"}]}"),
     "x.json: routes.chat.max_attempts: must be an integer from 1 to 16 (got 0)"},
    {ROUTE_WITH("{\"max_attempts\":17,\"targets\":[{\"provider\":\"a\",\"model\":\"m\"}]}"),
     "routes.chat.max_attempts: must be an integer from 1 to 16 (got 17)"},
    {TARGET_WITH("\"a/m\""), "x.json: routes.chat.targets[0]: must be an object"},
    {TARGET_WITH("{\"model\":\"m\"}"), "x.json: routes.chat.targets[0].provider: missing "
                                       "(required)"},
    {TARGET_WITH("{\"provider\":\"\",\"model\":\"m\"}"),
     "x.json: routes.chat.targets[0].provider: must not be empty"},
    {TARGET_WITH("{\"provider\":1,\"model\":\"m\"}"),
     "routes.chat.targets[0].provider: must be a string (got integer)"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\"},{\"provider\":\"zzz\",\"model\":\"m\"}"),
     "x.json: routes.chat.targets[1].provider: unknown provider \"zzz\""},
    {TARGET_WITH("{\"provider\":\"a\"}"), "x.json: routes.chat.targets[0].model: missing "
                                          "(required)"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"\"}"),
     "x.json: routes.chat.targets[0].model: must not be empty"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":5}"),
     "routes.chat.targets[0].model: must be a string (got integer)"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\",\"wieght\":2}"),
     "x.json: routes.chat.targets[0].wieght: unknown key (did you mean \"weight\"?)"},
    {"{" PROVS ",\"routes\":{\"gpt-4.1\":{\"targets\":[{\"provider\":\"b\",\"model\":\"m\"}]}}}",
     "x.json: routes[\"gpt-4.1\"].targets[0].provider: unknown provider \"b\""},
    {"{" PROVS ",\"routes\":{\"$comment\":5}}", "x.json: routes.$comment: must be a string"},

    /* provider policy attributes */
    {PROV_WITH("\"retains_data\":\"yes\""),
     "x.json: providers.a.retains_data: must be true or false (got string)"},
    {PROV_WITH("\"forward_headers\":\"anthropic-beta\""),
     "x.json: providers.a.forward_headers: must be an array of header names (got string)"},
    {PROV_WITH("\"forward_headers\":[\"anthropic-beta\",\"Authorization\"]"),
     "x.json: providers.a.forward_headers[1]: \"authorization\" is never forwarded"},
    {PROV_WITH("\"forward_headers\":[\"bad header\"]"),
     "x.json: providers.a.forward_headers[0]: \"bad header\" is not a header name"},
    {PROV_WITH("\"zdr\":1"), "x.json: providers.a.zdr: must be true or false (got integer)"},
    {PROV_WITH("\"tags\":[]"), "x.json: providers.a.tags: must be an object mapping tag names to "
                               "strings"},
    {PROV_WITH("\"tags\":{\"region\":\"x\"}"),
     "x.json: providers.a.tags.region: \"region\" is a built-in attribute and cannot be a tag"},
    {PROV_WITH("\"tags\":{\"a b\":\"x\"}"), "x.json: providers.a.tags[\"a b\"]: invalid tag name"},
    {PROV_WITH("\"tags\":{\"-x\":\"x\"}"), "x.json: providers.a.tags.-x: invalid tag name"},
    {PROV_WITH("\"tags\":{\"license\":1}"),
     "x.json: providers.a.tags.license: must be a string (got integer)"},
    {PROV_WITH("\"tags\":{\"license\":\"\"}"),
     "x.json: providers.a.tags.license: must not be empty"},
    {PROV_WITH("\"tags\":{\"license\":\"${MR_T_UNSET}\"}"),
     "x.json: providers.a.tags.license: ${MR_T_UNSET} is not set"},

    /* target attributes */
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\",\"creator\":\"\"}"),
     "x.json: routes.chat.targets[0].creator: must not be empty"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\",\"creator\":7}"),
     "x.json: routes.chat.targets[0].creator: must be a string (got integer)"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\",\"open_weights\":\"true\"}"),
     "x.json: routes.chat.targets[0].open_weights: must be true or false (got string)"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\",\"input_per_mtok\":-1}"),
     "x.json: routes.chat.targets[0].input_per_mtok: must be a number from 0 to 1e+06 (got -1)"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\",\"output_per_mtok\":\"1\"}"),
     "x.json: routes.chat.targets[0].output_per_mtok: must be a number from 0 to 1e+06 (got "
     "string)"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\",\"weight\":0}"),
     "x.json: routes.chat.targets[0].weight: must be an integer from 1 to 1000000 (got 0)"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\",\"weight\":1.5}"),
     "x.json: routes.chat.targets[0].weight: must be an integer from 1 to 1000000 (got 1.5)"},
    {TARGET_WITH("{\"provider\":\"a\",\"model\":\"m\",\"tags\":{\"creator\":\"x\"}}"),
     "x.json: routes.chat.targets[0].tags.creator: \"creator\" is a built-in attribute"},

    /* policies */
    {"{" PROVS ",\"policies\":[]}",
     "x.json: policies: must be an object mapping policy names to policies (got array)"},
    {"{" PROVS ",\"policies\":{\"p\":1}}", "x.json: policies.p: must be an object (got integer)"},
    {"{" PROVS ",\"policies\":{\"a b\":{}}}", "x.json: policies[\"a b\"]: invalid policy name"},
    {"{" PROVS ",\"policies\":{\"p\":{\"alow\":{}}}}",
     "x.json: policies.p.alow: unknown key (did you mean \"allow\"?)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"allow\":[]}}}",
     "x.json: policies.p.allow: must be an object mapping attribute names to arrays of values"},
    {"{" PROVS ",\"policies\":{\"p\":{\"deny\":{}}}}",
     "x.json: policies.p.deny: must name at least one attribute"},
    {"{" PROVS ",\"policies\":{\"p\":{\"allow\":{\"regoin\":[\"eu\"]}}}}",
     "x.json: policies.p.allow.regoin: unknown attribute (did you mean \"region\"?): use "
     "provider, model, kind, vendor, region, jurisdiction, creator or a tag name"},
    {"{" PROVS ",\"policies\":{\"p\":{\"allow\":{\"license\":[\"mit\"]}}}}",
     "x.json: policies.p.allow.license: unknown attribute: use provider"},
    {"{" PROVS ",\"policies\":{\"p\":{\"allow\":{\"region\":[]}}}}",
     "x.json: policies.p.allow.region: must be a non-empty array of strings (got an empty "
     "array)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"allow\":{\"region\":\"eu\"}}}}",
     "x.json: policies.p.allow.region: must be a non-empty array of strings (got string)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"allow\":{\"region\":[\"eu\",1]}}}}",
     "x.json: policies.p.allow.region[1]: must be a string (got integer)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"allow\":{\"region\":[\"\"]}}}}",
     "x.json: policies.p.allow.region[0]: must not be empty"},
    {"{" PROVS ",\"policies\":{\"p\":{\"deny\":{\"jurisdiction\":[\"FR\",\"FRA\"]}}}}",
     "x.json: policies.p.deny.jurisdiction[1]: must be a two-letter ISO 3166-1 country code "
     "such as \"FR\" (got \"FRA\")"},
    {"{" PROVS ",\"policies\":{\"p\":{\"allow\":{\"kind\":[\"opnai\"]}}}}",
     "x.json: policies.p.allow.kind[0]: must be one of openai, anthropic, gemini, azure (got "
     "\"opnai\")"},
    {"{" PROVS ",\"policies\":{\"p\":{\"open_weights_only\":1}}}",
     "x.json: policies.p.open_weights_only: must be true or false (got integer)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"data_collection\":\"no\"}}}",
     "x.json: policies.p.data_collection: must be one of allow, deny (got \"no\")"},
    {"{" PROVS ",\"policies\":{\"p\":{\"zdr_only\":null}}}",
     "x.json: policies.p.zdr_only: must be true or false (got null)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"strategy\":\"fastest\"}}}",
     "x.json: policies.p.strategy: must be one of priority, weighted, round_robin, "
     "least_latency, cheapest (got \"fastest\")"},
    {"{" PROVS ",\"policies\":{\"p\":{\"fallback_diversity\":\"model\"}}}",
     "x.json: policies.p.fallback_diversity: must be one of none, vendor, region, jurisdiction "
     "(got \"model\")"},
    {"{" PROVS ",\"policies\":{\"p\":{\"max_vendor_share\":0}}}",
     "x.json: policies.p.max_vendor_share: must be a number greater than 0 and at most 1 (got "
     "0)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"max_vendor_share\":1.5}}}",
     "x.json: policies.p.max_vendor_share: must be a number greater than 0 and at most 1 (got "
     "1.5)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"share_window_s\":0}}}",
     "x.json: policies.p.share_window_s: must be an integer from 1 to 86400 (got 0)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"min_vendors\":33}}}",
     "x.json: policies.p.min_vendors: must be an integer from 1 to 32 (got 33)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"max_price\":1}}}",
     "x.json: policies.p.max_price: must be an object like {\"input\": 1.0, \"output\": 3.0}"},
    {"{" PROVS ",\"policies\":{\"p\":{\"max_price\":{}}}}",
     "x.json: policies.p.max_price: must set \"input\", \"output\" or both"},
    {"{" PROVS ",\"policies\":{\"p\":{\"max_price\":{\"inputs\":1}}}}",
     "x.json: policies.p.max_price.inputs: unknown key (did you mean \"input\"?)"},
    {"{" PROVS ",\"policies\":{\"p\":{\"max_price\":{\"output\":-0.5}}}}",
     "x.json: policies.p.max_price.output: must be a number from 0 to 1e+06 (got -0.5)"},
    {"{" PROVS ",\"default_policy\":\"nope\"}",
     "x.json: default_policy: unknown policy \"nope\" (define it under \"policies\")"},
    {"{" PROVS ",\"policies\":{\"eu-only\":{}},\"default_policy\":\"eu-onyl\"}",
     "x.json: default_policy: unknown policy \"eu-onyl\" (did you mean \"eu-only\"?)"},
    {"{" PROVS ",\"default_policy\":3}", "x.json: default_policy: must be a string (got integer)"},

    /* keys */
    {"{" PROVS ",\"keys\":[]}",
     "x.json: keys: must be an object mapping key names to keys (got array)"},
    {"{" PROVS ",\"keys\":{\"k\":\"sk-secret\"}}", "x.json: keys.k: must be an object like"},
    {"{" PROVS ",\"keys\":{\"k\":{}}}", "x.json: keys.k.sha256: missing (required)"},
    {"{" PROVS ",\"keys\":{\"k\":{\"sha256\":\"sk-test-secret-value\"}}}",
     "x.json: keys.k.sha256: must be the SHA-256 of the key as 64 hex digits"},
    {"{" PROVS ",\"keys\":{\"k\":{\"sha256\":\"" HEX64 "\",\"polcy\":\"x\"}}}",
     "x.json: keys.k.polcy: unknown key (did you mean \"policy\"?)"},
    {"{" PROVS ",\"keys\":{\"k\":{\"sha256\":\"" HEX64 "\",\"policy\":\"x\"}}}",
     "x.json: keys.k.policy: unknown policy \"x\""},
    {"{" PROVS ",\"keys\":{\"k\":{\"sha256\":\"" HEX64 "\"},\"j\":{\"sha256\":\"" HEX64 "\"}}}",
     "x.json: keys.j.sha256: same digest as keys.k: give every key its own secret"},
    {"{" PROVS ",\"keys\":{\"a b\":{\"sha256\":\"" HEX64 "\"}}}",
     "x.json: keys[\"a b\"]: invalid key name"},
    {"{" PROVS ",\"allow_unauthenticated\":\"yes\"}",
     "x.json: allow_unauthenticated: must be true or false (got string)"},

    /* exposure */
    {"{" PROVS ",\"listen\":\"0.0.0.0:8080\"}",
     "x.json: listen: refusing to listen on 0.0.0.0:8080 without authentication: no gateway "
     "keys are configured; add \"keys\" (docs/configuration.md#keys) or set "
     "\"allow_unauthenticated\": true in x.json"},
    {"{" PROVS ",\"listen\":\"[::]:80\"}", "x.json: listen: refusing to listen on [::]:80 "},
    {"{" PROVS ",\"listen\":\"10.1.2.3:80\",\"allow_unauthenticated\":false}",
     "x.json: listen: refusing to listen on 10.1.2.3:80 "},
};

static void test_validation_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        const err_case_t *c = &err_cases[i];
        char err[1024] = "";
        mr_config_t *cfg = (mr_config_t *)0x1;
        int rc = mr_config_load_string(c->json, "x.json", &cfg, err, sizeof(err));

        if (rc != -1 || cfg != NULL) {
            print_error("case %zu: loaded, want error \"%s\"\n  json: %s\n", i, c->want, c->json);
            fail();
        }
        if (!strstr(err, c->want)) {
            print_error("case %zu: error\n  \"%s\"\nlacks\n  \"%s\"\n  json: %s\n", i, err, c->want,
                        c->json);
            fail();
        }
        /* one line, origin first, never the secret from MR_T_KEY */
        assert_null(strchr(err, '\n'));
        assert_int_equal(strncmp(err, "x.json", 6), 0);
        assert_not_contains(err, "sk-test-secret-value");
    }
}

/* Exact full messages for the examples the design brief names. */
static void test_exact_messages(void **state)
{
    char err[1024];
    mr_config_t *cfg;

    (void)state;
    assert_int_equal(
        mr_config_load_string(
            "{\"providers\":{\"mistral\":{\"kind\":\"openai\",\"base_url\":\"http://h\"},"
            "\"deepseek\":{\"kind\":\"openai\",\"base_url\":\"http://h\"}},"
            "\"routes\":{\"chat\":{\"targets\":[{\"provider\":\"mistral\",\"model\":\"m\"},"
            "{\"provider\":\"mistrall\",\"model\":\"m\"}]}}}",
            "config/meridian.json", &cfg, err, sizeof(err)),
        -1);
    assert_string_equal(err, "config/meridian.json: routes.chat.targets[1].provider: unknown "
                             "provider \"mistrall\" (did you mean \"mistral\"?)");

    assert_int_equal(mr_config_load_string("{\"provders\":{}}", "x.json", &cfg, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "x.json: provders: unknown key (did you mean \"providers\"?)");

    assert_int_equal(
        mr_config_load_string("{" PROVS ",\"qqqqqqqqqq\":1}", "x.json", &cfg, err, sizeof(err)),
        -1);
    assert_string_equal(err, "x.json: qqqqqqqqqq: unknown key");

    /* NULL origin is "<string>" */
    assert_int_equal(mr_config_load_string("{}", NULL, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "<string>: providers: missing (required): define at least one "
                             "provider");

    /* a tiny or absent error buffer is safe */
    assert_int_equal(mr_config_load_string("{}", NULL, &cfg, err, 4), -1);
    assert_string_equal(err, "<st");
    assert_int_equal(mr_config_load_string("{}", NULL, &cfg, NULL, 0), -1);
    assert_null(cfg);
}

static void test_defaults(void **state)
{
    mr_config_t *cfg;
    const mr_provider_t *p;

    (void)state;
    cfg = load_ok("{" PROVS "}");
    assert_string_equal(cfg->origin, "t.json");
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_int_equal(cfg->max_attempts, 3);
    assert_int_equal(cfg->timeouts.connect_ms, 5000);
    assert_int_equal(cfg->timeouts.first_byte_ms, 60000);
    assert_int_equal(cfg->timeouts.request_ms, 300000);
    assert_int_equal(cfg->timeouts.stream_idle_ms, 60000);
    assert_int_equal(cfg->timeouts.client_idle_s, 60);
    assert_int_equal(cfg->timeouts.drain_ms, 10000);
    assert_int_equal(cfg->limits.max_body_bytes, 4194304);
    assert_int_equal(cfg->limits.worker_memory_bytes, 268435456);
    assert_int_equal(cfg->limits.max_header_bytes, 16384);
    assert_int_equal(cfg->limits.max_response_bytes, 67108864);
    assert_int_equal(cfg->limits.stream_buffer_bytes, 262144);
    assert_int_equal(cfg->limits.max_connections, 4096);
    assert_int_equal(cfg->n_providers, 1);
    assert_int_equal(cfg->n_routes, 0);
    assert_int_equal(cfg->n_warnings, 0);

    p = mr_config_find_provider(cfg, "a");
    assert_ptr_equal(p, &cfg->providers[0]);
    assert_string_equal(p->name, "a");
    assert_int_equal(p->kind, MR_KIND_OPENAI);
    assert_string_equal(p->base_url, "http://127.0.0.1:1/v1");
    assert_null(p->api_key);
    assert_string_equal(p->vendor, "a");
    assert_string_equal(p->region, "");
    assert_string_equal(p->jurisdiction, "");
    assert_int_equal(p->n_models, 0);
    assert_true(p->enabled);
    assert_null(p->key_env);
    assert_null(p->disabled_reason);
    assert_null(mr_config_find_provider(cfg, "b"));
    assert_null(mr_config_find_route(cfg, "a"));
    mr_config_free(cfg);
}

static void test_full_config(void **state)
{
    mr_config_t *cfg;
    const mr_provider_t *m, *g;
    const mr_route_t *r;

    (void)state;
    setenv("MR_T_REGION", "eu", 1);
    cfg = load_ok(
        "{\"$comment\":\"top\",\"listen\":\"0.0.0.0:9000\",\"allow_unauthenticated\":true,"
        "\"max_attempts\":5,"
        "\"timeouts\":{\"$comment\":\"t\",\"connect_ms\":1,\"first_byte_ms\":2,\"request_ms\":3,"
        "\"stream_idle_ms\":4,\"client_idle_s\":5,\"drain_ms\":6},"
        "\"limits\":{\"max_body_bytes\":1024,\"max_header_bytes\":2048,"
        "\"max_response_bytes\":4096,\"stream_buffer_bytes\":8192,\"max_connections\":7},"
        "\"providers\":{\"$comment\":\"p\",\"mistral\":{\"$comment\":\"m\",\"kind\":\"openai\","
        "\"base_url\":\"https://api.mistral.ai/v1//\",\"api_key\":\"${MR_T_KEY}\","
        "\"vendor\":\"Mistral AI\",\"region\":\"${MR_T_REGION}\",\"jurisdiction\":\"fr\","
        "\"models\":[\"mistral-small-latest\",\"codestral-latest\"]},"
        "\"gem\":{\"kind\":\"gemini\",\"base_url\":\"HTTPS://g.example\",\"api_key\":\"lit$$key\"},"
        "\"an\":{\"kind\":\"anthropic\",\"base_url\":\"http://a\"},"
        "\"az\":{\"kind\":\"azure\",\"base_url\":\"http://z\"}},"
        "\"routes\":{\"zeta\":{\"targets\":[{\"provider\":\"gem\",\"model\":\"g1\"}]},"
        "\"alpha\":{\"$comment\":\"r\",\"max_attempts\":2,\"targets\":[{\"$comment\":\"x\","
        "\"provider\":\"mistral\",\"model\":\"m1\"},{\"provider\":\"gem\",\"model\":\"g/2\"}]},"
        "\"a/b.c\":{\"targets\":[{\"provider\":\"az\",\"model\":\"x\"}]}}}");

    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 9000);
    assert_int_equal(cfg->max_attempts, 5);
    assert_int_equal(cfg->timeouts.connect_ms, 1);
    assert_int_equal(cfg->timeouts.first_byte_ms, 2);
    assert_int_equal(cfg->timeouts.request_ms, 3);
    assert_int_equal(cfg->timeouts.stream_idle_ms, 4);
    assert_int_equal(cfg->timeouts.client_idle_s, 5);
    assert_int_equal(cfg->timeouts.drain_ms, 6);
    assert_int_equal(cfg->limits.max_body_bytes, 1024);
    assert_int_equal(cfg->limits.max_header_bytes, 2048);
    assert_int_equal(cfg->limits.max_response_bytes, 4096);
    assert_int_equal(cfg->limits.stream_buffer_bytes, 8192);
    assert_int_equal(cfg->limits.max_connections, 7);

    /* providers in file order, "$comment" skipped */
    assert_int_equal(cfg->n_providers, 4);
    assert_string_equal(cfg->providers[0].name, "mistral");
    assert_string_equal(cfg->providers[1].name, "gem");
    assert_string_equal(cfg->providers[2].name, "an");
    assert_string_equal(cfg->providers[3].name, "az");

    m = mr_config_find_provider(cfg, "mistral");
    assert_string_equal(m->base_url, "https://api.mistral.ai/v1");
    assert_string_equal(m->api_key, "sk-test-secret-value");
    assert_string_equal(m->key_env, "MR_T_KEY");
    assert_true(m->enabled);
    assert_string_equal(m->vendor, "Mistral AI");
    assert_string_equal(m->region, "eu");
    assert_string_equal(m->jurisdiction, "FR");
    assert_int_equal(m->n_models, 2);
    assert_string_equal(m->models[0], "mistral-small-latest");
    assert_string_equal(m->models[1], "codestral-latest");

    g = mr_config_find_provider(cfg, "gem");
    assert_int_equal(g->kind, MR_KIND_GEMINI);
    assert_string_equal(g->base_url, "HTTPS://g.example");
    assert_string_equal(g->api_key, "lit$key");
    assert_null(g->key_env);
    assert_int_equal(mr_config_find_provider(cfg, "an")->kind, MR_KIND_ANTHROPIC);
    assert_int_equal(mr_config_find_provider(cfg, "az")->kind, MR_KIND_AZURE);

    /* routes in file order; default max_attempts is the global one */
    assert_int_equal(cfg->n_routes, 3);
    assert_string_equal(cfg->routes[0].name, "zeta");
    assert_int_equal(cfg->routes[0].max_attempts, 5);
    r = mr_config_find_route(cfg, "alpha");
    assert_ptr_equal(r, &cfg->routes[1]);
    assert_int_equal(r->max_attempts, 2);
    assert_int_equal(r->n_targets, 2);
    assert_ptr_equal(r->targets[0].provider, m);
    assert_string_equal(r->targets[0].model, "m1");
    assert_ptr_equal(r->targets[1].provider, g);
    assert_string_equal(r->targets[1].model, "g/2");
    assert_non_null(mr_config_find_route(cfg, "a/b.c"));
    assert_int_equal(cfg->n_warnings, 0);
    mr_config_free(cfg);
    unsetenv("MR_T_REGION");
}

static void test_max_targets(void **state)
{
    char json[8192];
    size_t o;
    mr_config_t *cfg;
    char err[512];

    (void)state;
    o = (size_t)snprintf(json, sizeof(json), "{" PROVS ",\"routes\":{\"r\":{\"targets\":[");
    for (int i = 0; i < 32; i++)
        o += (size_t)snprintf(json + o, sizeof(json) - o,
                              "%s{\"provider\":\"a\",\"model\":\"m%d\"}", i ? "," : "", i);
    snprintf(json + o, sizeof(json) - o, "]}}}");
    cfg = load_ok(json);
    assert_int_equal(cfg->routes[0].n_targets, 32);
    mr_config_free(cfg);

    /* 33 is one too many */
    o = strlen(json) - 4;
    snprintf(json + o, sizeof(json) - o, ",{\"provider\":\"a\",\"model\":\"x\"}]}}}");
    assert_int_equal(mr_config_load_string(json, "x.json", &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "x.json: routes.r.targets: must list at most 32 targets (got 33)");
}

static void test_disabled_providers(void **state)
{
    mr_config_t *cfg;
    const mr_provider_t *p;

    (void)state;
    setenv("MR_T_CTRL", "sk-a\nb", 1);
    cfg = load_ok("{\"providers\":{"
                  "\"mistral\":{\"kind\":\"openai\",\"base_url\":\"http://h\","
                  "\"api_key\":\"${MR_T_UNSET}\"},"
                  "\"empty\":{\"kind\":\"openai\",\"base_url\":\"http://h\","
                  "\"api_key\":\"${MR_T_EMPTY}\"},"
                  "\"ctrl\":{\"kind\":\"openai\",\"base_url\":\"http://h\","
                  "\"api_key\":\"${MR_T_CTRL}\"},"
                  "\"dflt\":{\"kind\":\"openai\",\"base_url\":\"http://h\","
                  "\"api_key\":\"${MR_T_UNSET:-fallback-key}\"},"
                  "\"pre\":{\"kind\":\"openai\",\"base_url\":\"http://h\","
                  "\"api_key\":\"Bearer-${MR_T_KEY}\"},"
                  "\"ok\":{\"kind\":\"openai\",\"base_url\":\"http://h\","
                  "\"api_key\":\"${MR_T_KEY}\"}},"
                  "\"routes\":{\"r\":{\"targets\":[{\"provider\":\"mistral\",\"model\":\"x\"}]}}}");

    p = mr_config_find_provider(cfg, "mistral");
    assert_false(p->enabled);
    assert_null(p->api_key);
    assert_string_equal(p->key_env, "MR_T_UNSET");
    assert_string_equal(p->disabled_reason, "MR_T_UNSET is not set");

    p = mr_config_find_provider(cfg, "empty");
    assert_false(p->enabled);
    assert_null(p->api_key);
    assert_string_equal(p->key_env, "MR_T_EMPTY");
    assert_string_equal(p->disabled_reason, "MR_T_EMPTY is empty");

    p = mr_config_find_provider(cfg, "ctrl");
    assert_false(p->enabled);
    assert_null(p->api_key);
    assert_string_equal(p->disabled_reason, "MR_T_CTRL contains a control character");

    p = mr_config_find_provider(cfg, "dflt");
    assert_true(p->enabled);
    assert_string_equal(p->api_key, "fallback-key");
    assert_string_equal(p->key_env, "MR_T_UNSET");

    p = mr_config_find_provider(cfg, "pre");
    assert_true(p->enabled);
    assert_string_equal(p->api_key, "Bearer-sk-test-secret-value");
    assert_string_equal(p->key_env, "MR_T_KEY");

    p = mr_config_find_provider(cfg, "ok");
    assert_true(p->enabled);
    assert_null(p->disabled_reason);

    /* one warning per disabled provider, in order, never a secret */
    assert_int_equal(cfg->n_warnings, 3);
    assert_string_equal(cfg->warnings[0], "provider \"mistral\" disabled: MR_T_UNSET is not set");
    assert_string_equal(cfg->warnings[1], "provider \"empty\" disabled: MR_T_EMPTY is empty");
    assert_string_equal(cfg->warnings[2],
                        "provider \"ctrl\" disabled: MR_T_CTRL contains a control character");

    /* a route whose only target is disabled still loads */
    assert_int_equal(cfg->n_routes, 1);
    mr_config_free(cfg);
    unsetenv("MR_T_CTRL");
}

static void test_listen(void **state)
{
    static const struct {
        const char *in;
        const char *host;
        int port;
    } good[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080}, {"0.0.0.0:0", "0.0.0.0", 0},
        {"[::1]:8080", "::1", 8080},           {"[::]:65535", "::", 65535},
        {"10.1.2.3:00080", "10.1.2.3", 80},    {"[fe80::1:2]:1", "fe80::1:2", 1},
    };
    static const struct {
        const char *in;
        const char *why;
    } bad[] = {
        {"", "missing \":PORT\""},
        {"localhost:80", "host must be an IPv4 address"},
        {"1.2.3.4:65536", "port must be a number from 0 to 65535"},
        {"1.2.3.4:999999", "port must be a number from 0 to 65535"},
        {"1.2.3.4:99999999999999999999999", "port must be a number from 0 to 65535"},
        {"1.2.3.4:+80", "port must be a number from 0 to 65535"},
        {"1.2.3.4: 80", "port must be a number from 0 to 65535"},
        {"1.2.3.4", "missing \":PORT\""},
        {"::1:80", "IPv6 addresses must be bracketed"},
        {"[::1]", "missing \":PORT\" after \"]\""},
        {"[1.2.3.4]:80", "host is not a valid IPv6 address"},
        {"256.1.1.1:80", "host must be an IPv4 address"},
        {":80", "missing host"},
        {"[]:80", "missing host"},
    };
    mr_config_t *cfg;
    char err[256], want[256];

    (void)state;
    cfg = load_ok("{" PROVS ",\"listen\":\"[::1]:9000\"}");
    assert_string_equal(cfg->listen_host, "::1");
    assert_int_equal(cfg->listen_port, 9000);

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (mr_config_set_listen(cfg, good[i].in, err, sizeof(err)) != 0) {
            print_error("%s: %s\n", good[i].in, err);
            fail();
        }
        assert_string_equal(cfg->listen_host, good[i].host);
        assert_int_equal(cfg->listen_port, good[i].port);
    }
    assert_int_equal(mr_config_set_listen(cfg, "127.0.0.1:8081", err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mr_config_set_listen(cfg, bad[i].in, err, sizeof(err)) != -1) {
            print_error("%s: accepted\n", bad[i].in);
            fail();
        }
        snprintf(want, sizeof(want), "invalid listen address \"%s\": ", bad[i].in);
        assert_int_equal(strncmp(err, want, strlen(want)), 0);
        assert_contains(err, bad[i].why);
        /* a failed override leaves the config untouched */
        assert_string_equal(cfg->listen_host, "127.0.0.1");
        assert_int_equal(cfg->listen_port, 8081);
    }
    mr_config_free(cfg);
}

static char *print_to_string(const mr_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    mr_config_print_table(cfg, f);
    fclose(f);
    return buf;
}

static void test_print_table(void **state)
{
    mr_config_t *cfg;
    char *out;

    (void)state;
    cfg = load_ok("{\"providers\":{"
                  "\"mistral\":{\"kind\":\"openai\",\"base_url\":\"https://api.mistral.ai/v1\","
                  "\"api_key\":\"${MR_T_KEY}\",\"region\":\"eu\",\"jurisdiction\":\"FR\","
                  "\"models\":[\"m-a\",\"m-b\"]},"
                  "\"deepseek\":{\"kind\":\"openai\",\"base_url\":\"https://api.deepseek.com/v1\","
                  "\"api_key\":\"${MR_T_UNSET}\",\"region\":\"cn\",\"jurisdiction\":\"CN\"},"
                  "\"lit\":{\"kind\":\"anthropic\",\"base_url\":\"http://h\","
                  "\"api_key\":\"literal-secret-42\"}},"
                  "\"routes\":{\"chat\":{\"targets\":["
                  "{\"provider\":\"mistral\",\"model\":\"mistral-small-latest\"},"
                  "{\"provider\":\"deepseek\",\"model\":\"deepseek-chat\"}]},"
                  "\"dead\":{\"max_attempts\":2,\"targets\":["
                  "{\"provider\":\"deepseek\",\"model\":\"a\"},"
                  "{\"provider\":\"deepseek\",\"model\":\"b\"}]}}}");
    out = print_to_string(cfg);

    assert_int_equal(strncmp(out, "listen 127.0.0.1:8080\n", 22), 0);
    assert_contains(out, "\nmax_attempts 3\n");
    assert_contains(out, "\nproviders: (2 of 3 enabled)\n");
    assert_contains(out, "  mistral   openai     https://api.mistral.ai/v1    vendor=mistral "
                         "region=eu jurisdiction=FR  enabled\n");
    assert_contains(out, "  deepseek  openai     https://api.deepseek.com/v1  vendor=deepseek "
                         "region=cn jurisdiction=CN  disabled (MR_T_UNSET is not set)\n");
    assert_contains(out, "  lit       anthropic  http://h                     vendor=lit "
                         "region=- jurisdiction=-  enabled\n");
    assert_contains(out, "models: m-a, m-b\n");
    assert_contains(out,
                    "\nroutes:\n  chat  (max_attempts 3)\n"
                    "    1. mistral/mistral-small-latest\n"
                    "    2. deepseek/deepseek-chat         [disabled: MR_T_UNSET is not set]\n");
    assert_contains(out, "  dead  (max_attempts 2)\n");
    assert_contains(out, "    1. deepseek/a   [disabled: MR_T_UNSET is not set]\n"
                         "    2. deepseek/b   [disabled: MR_T_UNSET is not set]\n"
                         "    -> no enabled target: set MR_T_UNSET\n");
    assert_not_contains(out, "sk-test-secret-value");
    assert_not_contains(out, "literal-secret-42");
    free(out);

    assert_int_equal(mr_config_set_listen(cfg, "[::1]:0", NULL, 0), 0);
    out = print_to_string(cfg);
    assert_int_equal(strncmp(out, "listen [::1]:0\n", 15), 0);
    free(out);
    mr_config_free(cfg);

    cfg = load_ok("{" PROVS "}");
    out = print_to_string(cfg);
    assert_contains(out, "routes: (none");
    free(out);
    mr_config_free(cfg);
}

static void test_load_file(void **state)
{
    char err[1024];
    char path[] = "/tmp/meridian-test-config-XXXXXX";
    mr_config_t *cfg = (mr_config_t *)0x1;
    int fd;
    FILE *f;

    (void)state;
    assert_int_equal(mr_config_load_file("/nonexistent/meridian.json", &cfg, err, sizeof(err)), -1);
    assert_null(cfg);
    assert_string_equal(err, "/nonexistent/meridian.json: cannot open: No such file or directory");

    assert_int_equal(mr_config_load_file(MERIDIAN_SOURCE_DIR "/config", &cfg, err, sizeof(err)),
                     -1);
    assert_contains(err, MERIDIAN_SOURCE_DIR "/config: cannot read: ");

    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("{\n  \"providers\": {\n    \"a\": {\"kind\": \"openai\",,}\n  }\n}\n", f);
    fclose(f);
    assert_int_equal(mr_config_load_file(path, &cfg, err, sizeof(err)), -1);
    {
        char want[128];
        snprintf(want, sizeof(want), "%s:3:", path);
        assert_int_equal(strncmp(err, want, strlen(want)), 0);
        assert_contains(err, ": invalid JSON: ");
    }

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"providers\": {\"a\": {\"kind\": \"openai\", \"base_url\": \"http://h\"}},\n"
          " \"routes\": {\"r\": {\"targets\": [{\"provider\": \"b\", \"model\": \"m\"}]}}}\n",
          f);
    fclose(f);
    assert_int_equal(mr_config_load_file(path, &cfg, err, sizeof(err)), -1);
    {
        char want[256];
        snprintf(want, sizeof(want), "%s: routes.r.targets[0].provider: unknown provider \"b\"",
                 path);
        assert_string_equal(err, want);
    }

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"providers\": {\"a\": {\"kind\": \"openai\", \"base_url\": \"http://h\"}}}", f);
    fclose(f);
    assert_int_equal(mr_config_load_file(path, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->origin, path);
    mr_config_free(cfg);

    /* empty file */
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(mr_config_load_file(path, &cfg, err, sizeof(err)), -1);
    assert_contains(err, ": invalid JSON: ");
    unlink(path);

    mr_config_free(NULL);
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(mr_provider_kind_name(MR_KIND_OPENAI), "openai");
    assert_string_equal(mr_provider_kind_name(MR_KIND_ANTHROPIC), "anthropic");
    assert_string_equal(mr_provider_kind_name(MR_KIND_GEMINI), "gemini");
    assert_string_equal(mr_provider_kind_name(MR_KIND_AZURE), "azure");
    assert_string_equal(mr_provider_kind_name((mr_provider_kind_t)42), "unknown");
}

/* ------------------------------------------------------------------------ */
/* Policies, keys, exposure                                                   */
/* ------------------------------------------------------------------------ */

static void test_policies_loaded(void **state)
{
    mr_config_t *cfg;
    const mr_policy_t *p;
    const mr_route_t *r;

    (void)state;
    cfg = load_ok("{\"providers\":{"
                  "\"m\":{\"kind\":\"openai\",\"base_url\":\"http://h\",\"vendor\":\"mistral\","
                  "\"region\":\"eu\",\"jurisdiction\":\"FR\",\"zdr\":true,"
                  "\"tags\":{\"$comment\":\"c\",\"hosting\":\"sovereign\"}},"
                  "\"d\":{\"kind\":\"openai\",\"base_url\":\"http://h\",\"retains_data\":true}},"
                  "\"routes\":{\"chat\":{\"targets\":["
                  "{\"provider\":\"m\",\"model\":\"small\",\"creator\":\"mistral\","
                  "\"open_weights\":true,\"input_per_mtok\":0.1,\"output_per_mtok\":0.3,"
                  "\"weight\":5,\"tags\":{\"license\":\"apache-2.0\"}},"
                  "{\"provider\":\"d\",\"model\":\"chat\"}]}},"
                  "\"policies\":{\"$comment\":\"c\","
                  "\"eu\":{\"$comment\":\"x\",\"allow\":{\"region\":[\"eu\"],"
                  "\"jurisdiction\":[\"fr\",\"de\"],\"license\":[\"apache-2.0\"]},"
                  "\"deny\":{\"hosting\":[\"shared\"]},\"open_weights_only\":true,"
                  "\"data_collection\":\"deny\",\"zdr_only\":true,"
                  "\"max_price\":{\"input\":1},\"strategy\":\"least_latency\","
                  "\"fallback_diversity\":\"jurisdiction\",\"max_vendor_share\":0.25,"
                  "\"share_window_s\":300,\"min_vendors\":1},"
                  "\"plain\":{}},"
                  "\"default_policy\":\"plain\","
                  "\"keys\":{\"$comment\":\"k\",\"team\":{\"sha256\":\"" HEX64
                  "\",\"policy\":\"eu\"},"
                  "\"ops\":{\"sha256\":"
                  "\"FEDCBA9876543210fedcba9876543210fedcba9876543210fedcba9876543210\"}},"
                  "\"listen\":\"0.0.0.0:0\"}");
    assert_true(mr_config_find_provider(cfg, "m")->zdr);
    assert_false(mr_config_find_provider(cfg, "m")->retains_data);
    assert_true(mr_config_find_provider(cfg, "d")->retains_data);
    assert_int_equal(mr_config_find_provider(cfg, "m")->n_tags, 1);
    r = mr_config_find_route(cfg, "chat");
    assert_string_equal(r->targets[0].creator, "mistral");
    assert_true(r->targets[0].open_weights);
    assert_true(r->targets[0].has_input_price && r->targets[0].has_output_price);
    assert_true(r->targets[0].input_per_mtok == 0.1);
    assert_int_equal(r->targets[0].weight, 5);
    /* defaults */
    assert_string_equal(r->targets[1].creator, "d");
    assert_false(r->targets[1].open_weights);
    assert_false(r->targets[1].has_input_price);
    assert_int_equal(r->targets[1].weight, 1);
    assert_int_equal(r->targets[1].n_tags, 0);

    assert_int_equal(cfg->n_policies, 2);
    p = mr_config_find_policy(cfg, "eu");
    assert_ptr_equal(p, &cfg->policies[0]);
    assert_int_equal(p->n_allow, 3);
    assert_string_equal(p->allow[1].attr, "jurisdiction");
    assert_string_equal(p->allow[1].values[0], "FR"); /* upper-cased */
    assert_string_equal(p->allow[1].values[1], "DE");
    assert_string_equal(p->deny[0].attr, "hosting");
    assert_true(p->open_weights_only && p->deny_data_collection && p->zdr_only);
    assert_true(p->has_max_input);
    assert_false(p->has_max_output);
    assert_int_equal(p->strategy, MR_STRATEGY_LEAST_LATENCY);
    assert_true(p->strategy_set);
    assert_int_equal(p->diversity, MR_DIVERSITY_JURISDICTION);
    assert_true(p->max_vendor_share == 0.25);
    assert_int_equal(p->share_window_s, 300);
    assert_int_equal(p->min_vendors, 1);
    assert_int_equal(p->share_slot, 0);
    assert_int_equal(strlen(p->hash), 64);
    p = mr_config_find_policy(cfg, "plain");
    assert_false(p->strategy_set || p->diversity_set);
    assert_int_equal(p->strategy, MR_STRATEGY_PRIORITY);
    assert_int_equal(p->share_window_s, 60);
    assert_int_equal(p->share_slot, -1);
    assert_ptr_equal(cfg->default_policy, p);
    assert_null(mr_config_find_policy(cfg, "nope"));
    assert_string_equal(mr_strategy_name(MR_STRATEGY_ROUND_ROBIN), "round_robin");
    assert_string_equal(mr_diversity_name(MR_DIVERSITY_REGION), "region");

    assert_int_equal(cfg->n_keys, 2);
    assert_string_equal(cfg->keys[0].name, "team");
    assert_ptr_equal(cfg->keys[0].policy, mr_config_find_policy(cfg, "eu"));
    assert_int_equal(cfg->keys[0].digest[0], 0x01);
    assert_int_equal(cfg->keys[1].digest[0], 0xfe);
    assert_null(cfg->keys[1].policy);
    /* keys make a non-loopback listen address acceptable */
    assert_int_equal(mr_config_check_exposure(cfg, NULL, 0), 0);
    mr_config_free(cfg);
}

static void test_exposure(void **state)
{
    static const char *const loopback[] = {"127.0.0.1:1", "127.9.8.7:1", "[::1]:1",
                                           "[::ffff:127.0.0.1]:1"};
    static const char *const exposed[] = {"0.0.0.0:1", "10.0.0.1:1", "[::]:1",
                                          "[::ffff:10.0.0.1]:1", "128.0.0.1:1"};
    mr_config_t *cfg;
    char err[512];

    (void)state;
    cfg = load_ok("{" PROVS "}");
    for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
        assert_int_equal(mr_config_set_listen(cfg, loopback[i], NULL, 0), 0);
        assert_int_equal(mr_config_check_exposure(cfg, err, sizeof(err)), 0);
    }
    for (size_t i = 0; i < sizeof(exposed) / sizeof(exposed[0]); i++) {
        /* --listen can move a loopback-only config onto the network: main
         * calls mr_config_check_exposure again after it */
        assert_int_equal(mr_config_set_listen(cfg, exposed[i], NULL, 0), 0);
        assert_int_equal(mr_config_check_exposure(cfg, err, sizeof(err)), -1);
        assert_contains(err, "refusing to listen on ");
        assert_contains(err, "add \"keys\" (docs/configuration.md#keys) or set "
                             "\"allow_unauthenticated\": true in t.json");
    }
    assert_int_equal(mr_config_set_listen(cfg, "0.0.0.0:8080", NULL, 0), 0);
    assert_int_equal(mr_config_check_exposure(cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "refusing to listen on 0.0.0.0:8080 without authentication: no "
                             "gateway keys are configured; add \"keys\" "
                             "(docs/configuration.md#keys) or set \"allow_unauthenticated\": "
                             "true in t.json");
    mr_config_free(cfg);

    cfg = load_ok("{" PROVS ",\"listen\":\"[::]:8080\",\"allow_unauthenticated\":true}");
    assert_true(cfg->allow_unauthenticated);
    assert_int_equal(mr_config_check_exposure(cfg, err, sizeof(err)), 0);
    mr_config_free(cfg);
}

/* min_vendors: a load-time check of every route against the policy's static
 * filters, disabled providers counting as available. */
static void test_min_vendors(void **state)
{
#define MV_PROVS                                                                                   \
    "\"providers\":{"                                                                              \
    "\"m\":{\"kind\":\"openai\",\"base_url\":\"http://h\",\"vendor\":\"mistral\","                 \
    "\"region\":\"eu\"},"                                                                          \
    "\"s\":{\"kind\":\"openai\",\"base_url\":\"http://h\",\"vendor\":\"scaleway\","                \
    "\"region\":\"eu\",\"api_key\":\"${MR_T_UNSET}\"},"                                            \
    "\"d\":{\"kind\":\"openai\",\"base_url\":\"http://h\",\"vendor\":\"deepseek\","                \
    "\"region\":\"cn\"}},"                                                                         \
    "\"routes\":{\"chat\":{\"targets\":[{\"provider\":\"m\",\"model\":\"1\"},"                     \
    "{\"provider\":\"m\",\"model\":\"2\"},{\"provider\":\"s\",\"model\":\"3\"},"                   \
    "{\"provider\":\"d\",\"model\":\"4\"}]}}"
    mr_config_t *cfg;
    char err[1024];

    (void)state;
    /* three vendors, one of them disabled: enough for 3 */
    cfg = load_ok("{" MV_PROVS ",\"policies\":{\"diverse\":{\"min_vendors\":3}}}");
    mr_config_free(cfg);
    assert_int_equal(mr_config_load_string("{" MV_PROVS
                                           ",\"policies\":{\"diverse\":{\"min_vendors\":4}}}",
                                           "x.json", &cfg, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "x.json: routes.chat: policy \"diverse\" needs min_vendors 4 but "
                             "only 3 vendors remain: mistral, scaleway, deepseek");
    /* filters are applied first */
    assert_int_equal(mr_config_load_string("{" MV_PROVS ",\"policies\":{\"eu\":{\"allow\":"
                                           "{\"region\":[\"eu\"]},\"min_vendors\":3}}}",
                                           "x.json", &cfg, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "x.json: routes.chat: policy \"eu\" needs min_vendors 3 but only 2 "
                             "vendors remain: mistral, scaleway");
    assert_int_equal(mr_config_load_string("{" MV_PROVS ",\"policies\":{\"eu\":{\"deny\":"
                                           "{\"vendor\":[\"scaleway\",\"deepseek\"]},"
                                           "\"min_vendors\":2}}}",
                                           "x.json", &cfg, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "x.json: routes.chat: policy \"eu\" needs min_vendors 2 but only 1 "
                             "vendor remains: mistral");
    assert_int_equal(mr_config_load_string("{" MV_PROVS ",\"policies\":{\"kr\":{\"allow\":"
                                           "{\"region\":[\"kr\"]},\"min_vendors\":1}}}",
                                           "x.json", &cfg, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "x.json: routes.chat: policy \"kr\" needs min_vendors 1 but no "
                             "target remains under it");
#undef MV_PROVS
}

static void test_print_policies(void **state)
{
    mr_config_t *cfg;
    char *out;

    (void)state;
    cfg = load_ok("{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"http://h\","
                  "\"region\":\"eu\"}},"
                  "\"policies\":{\"eu-only\":{\"allow\":{\"region\":[\"eu\",\"ch\"]}},"
                  "\"mix\":{\"deny\":{\"jurisdiction\":[\"CN\",\"US\"]},\"open_weights_only\":true,"
                  "\"data_collection\":\"deny\",\"zdr_only\":true,"
                  "\"max_price\":{\"input\":1,\"output\":2.5},\"strategy\":\"cheapest\","
                  "\"fallback_diversity\":\"vendor\",\"max_vendor_share\":0.5}},"
                  "\"default_policy\":\"eu-only\","
                  "\"keys\":{\"team-eu\":{\"sha256\":\"" HEX64 "\",\"policy\":\"eu-only\"},"
                  "\"ops\":{\"sha256\":"
                  "\"1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}}}");
    out = print_to_string(cfg);
    assert_contains(out, "\npolicies: (default eu-only)\n");
    {
        char want[256];
        snprintf(want, sizeof(want), "  eu-only  allow region=[eu, ch]  sha256:%.12s\n",
                 mr_config_find_policy(cfg, "eu-only")->hash);
        assert_contains(out, want);
    }
    assert_contains(out, "  mix      deny jurisdiction=[CN, US] open_weights_only "
                         "data_collection=deny zdr_only max_price.input=1 max_price.output=2.5 "
                         "strategy=cheapest fallback_diversity=vendor max_vendor_share=0.5 "
                         "share_window_s=60  sha256:");
    assert_contains(out, "\nkeys: 2\n  team-eu -> policy eu-only\n  ops\n");
    /* the digests are not printed */
    assert_not_contains(out, HEX64);
    free(out);
    mr_config_free(cfg);

    cfg = load_ok("{" PROVS "}");
    out = print_to_string(cfg);
    assert_contains(out, "\npolicies: (none)\nkeys: (none: unauthenticated, loopback only)\n");
    free(out);
    mr_config_free(cfg);
}

/* ------------------------------------------------------------------------ */
/* Credentials never reach a message (issue 11, finding 10)                   */
/* ------------------------------------------------------------------------ */

#define PROV_URL(url) "{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"" url "\"}}}"
#define PROV_KIND(kind) "\"a\":{\"kind\":\"" kind "\",\"base_url\":\"http://h\"}"
/* a second provider "z" holding the api_key */
#define PROV_Z_KEY(key)                                                                            \
    ",\"z\":{\"kind\":\"openai\",\"base_url\":\"http://h\",\"api_key\":\"" key "\"}"
#define LONG_SECRET "sk-cred-long-0123456789012345678901234567890123456789012345678901234567890"

typedef struct cred_case {
    const char *json;
    const char *secret; /* must not appear in the message, not even its first 12 bytes */
    const char *want;   /* substring of the message */
} cred_case_t;

static const cred_case_t cred_cases[] = {
    /* userinfo in base_url is refused before any other check quotes the URL */
    {PROV_URL("ftp://user:sk-cred-0001@h/v1"), "sk-cred-0001",
     "x.json: providers.a.base_url: must not contain credentials"},
    {PROV_URL("https://user:sk-cred-0002@h /v1"), "sk-cred-0002",
     "x.json: providers.a.base_url: must not contain credentials"},
    {PROV_URL("https://user:sk-cred-0003@/v1"), "sk-cred-0003",
     "x.json: providers.a.base_url: must not contain credentials"},
    {PROV_URL("${MR_T_CRED_URL}"), "sk-env-cred-0004",
     "x.json: providers.a.base_url: must not contain credentials"},
    /* any other message that can quote a URL shows its userinfo as *** */
    {"{" PROVS ",\"listen\":\"http://user:sk-cred-0005@127.0.0.1:80\"}", "sk-cred-0005",
     "x.json: listen: invalid address \"http://***@127.0.0.1:80\": "},
    {"{\"providers\":{" PROV_KIND("https://u:sk-cred-0006@h") "}}", "sk-cred-0006",
     "x.json: providers.a.kind: must be one of openai, anthropic, gemini, azure (got "
     "\"https://***@h\")"},
    {"{\"providers\":{\"https://u:sk-cred-0007@h.x\":{}}}", "sk-cred-0007",
     "x.json: providers[\"https://***@h.x\"]: invalid provider name"},
    {TARGET_WITH("{\"provider\":\"https://u:sk-cred-0008@h\",\"model\":\"m\"}"), "sk-cred-0008",
     "x.json: routes.chat.targets[0].provider: unknown provider \"https://***@h\""},
    {PROV_WITH("\"forward_headers\":[\"https://u:sk-cred-0009@h\"]"), "sk-cred-0009",
     "\"https://***@h\" is not a header name"},
    /* jansson quotes the token it stopped in (when at most 20 bytes): an
     * unterminated string, or one cut at a bad escape inside the userinfo */
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"https://u:pw10@h", "pw10",
     "invalid JSON: premature end of input near '\"https://***@h'"},
    {"{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"https://u:pw11\\x@h\"}}}", "pw11",
     "invalid JSON: invalid escape near '\"https://***'"},
    /* a long value is cut for the message: never inside the credentials */
    {"{\"providers\":{" PROV_KIND("https://u:" LONG_SECRET "@h") "}}", LONG_SECRET,
     "(got \"https://***@h\")"},
    /* an api_key value, expanded or literal, quoted back by another member */
    {PROV_WITH("\"api_key\":\"${MR_T_KEY}\",\"jurisdiction\":\"${MR_T_KEY}\""),
     "sk-test-secret-value", "x.json: providers.a.jurisdiction: must be a two-letter"},
    {"{\"providers\":{" PROV_KIND("${MR_T_KEY}") PROV_Z_KEY("Bearer-${MR_T_KEY}") "}}",
     "sk-test-secret-value", "x.json: providers.a.kind: must be one of"},
    {"{\"providers\":{" PROV_KIND("sk-literal-0011") PROV_Z_KEY("sk-literal-0011") "}}",
     "sk-literal-0011", "x.json: providers.a.kind: must be one of"},
};

/* The secret, or its first 12 bytes (a message cut inside it), in msg. */
static bool shows_secret(const char *msg, const char *secret)
{
    char part[13];

    snprintf(part, sizeof(part), "%s", secret);
    return strstr(msg, part) != NULL;
}

static void assert_no_secret(const char *msg, const char *secret)
{
    if (shows_secret(msg, secret)) {
        print_error("\"%s\"\n  shows the secret \"%s\"\n", msg, secret);
        fail();
    }
}

static void test_no_credentials_in_errors(void **state)
{
    char err[1024];
    mr_config_t *cfg;
    size_t bad = 0;

    (void)state;
    setenv("MR_T_CRED_URL", "https://user:sk-env-cred-0004@h.example/v1", 1);
    for (size_t i = 0; i < sizeof(cred_cases) / sizeof(cred_cases[0]); i++) {
        const cred_case_t *c = &cred_cases[i];
        int rc;

        err[0] = '\0';
        cfg = (mr_config_t *)0x1;
        rc = mr_config_load_string(c->json, "x.json", &cfg, err, sizeof(err));
        if (rc != -1 || cfg || !strstr(err, c->want) || shows_secret(err, c->secret) ||
            strchr(err, '\n')) {
            print_error("case %zu: %s\n  \"%s\"\nwants\n  \"%s\"\nwithout \"%s\"\n", i,
                        rc == -1 ? "error" : "loaded", err, c->want, c->secret);
            bad++;
        }
        if (rc == 0)
            mr_config_free(cfg);
    }
    unsetenv("MR_T_CRED_URL");
    assert_int_equal(bad, 0);

    /* --listen: the same redaction */
    cfg = load_ok("{" PROVS "}");
    assert_int_equal(
        mr_config_set_listen(cfg, "http://u:sk-cred-0012@127.0.0.1:80", err, sizeof(err)), -1);
    assert_contains(err, "invalid listen address \"http://***@127.0.0.1:80\": ");
    assert_no_secret(err, "sk-cred-0012");
    mr_config_free(cfg);

    /* an '@' after the host is part of the path, not credentials */
    mr_config_free(load_ok(PROV_URL("https://h/v1/@x")));
}

/* ------------------------------------------------------------------------ */
/* The shipped default                                                        */
/* ------------------------------------------------------------------------ */

#define SHIPPED MERIDIAN_SOURCE_DIR "/config/meridian.json"

static mr_config_t *load_shipped_without_keys(void)
{
    char err[1024];
    mr_config_t *cfg = NULL;

    /* Learn the key variables from the config itself, unset them, reload. */
    if (mr_config_load_file(SHIPPED, &cfg, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        fail();
    }
    for (size_t i = 0; i < cfg->n_providers; i++)
        if (cfg->providers[i].key_env)
            unsetenv(cfg->providers[i].key_env);
    mr_config_free(cfg);
    unsetenv("OLLAMA_BASE_URL");
    if (mr_config_load_file(SHIPPED, &cfg, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        fail();
    }
    return cfg;
}

static void test_shipped_config(void **state)
{
    static const struct {
        const char *name, *var, *jurisdiction;
    } expect[] = {
        {"openai", "OPENAI_API_KEY", "US"},     {"mistral", "MISTRAL_API_KEY", "FR"},
        {"deepseek", "DEEPSEEK_API_KEY", "CN"}, {"groq", "GROQ_API_KEY", "US"},
        {"together", "TOGETHER_API_KEY", "US"}, {"upstage", "UPSTAGE_API_KEY", "KR"},
    };
    mr_config_t *cfg = load_shipped_without_keys();
    const mr_provider_t *ollama;
    size_t disabled = 0;
    char *out;

    (void)state;
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_true(cfg->n_providers >= 8);

    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        const mr_provider_t *p = mr_config_find_provider(cfg, expect[i].name);
        char reason[128];
        assert_non_null(p);
        assert_int_equal(p->kind, MR_KIND_OPENAI);
        assert_false(p->enabled);
        assert_string_equal(p->key_env, expect[i].var);
        snprintf(reason, sizeof(reason), "%s is not set", expect[i].var);
        assert_string_equal(p->disabled_reason, reason);
        assert_string_equal(p->jurisdiction, expect[i].jurisdiction);
        assert_int_equal(strncmp(p->base_url, "https://", 8), 0);
    }
    assert_string_equal(mr_config_find_provider(cfg, "mistral")->base_url,
                        "https://api.mistral.ai/v1");
    assert_string_equal(mr_config_find_provider(cfg, "mistral")->region, "eu");
    assert_string_equal(mr_config_find_provider(cfg, "deepseek")->base_url,
                        "https://api.deepseek.com/v1");

    for (size_t i = 0; i < cfg->n_providers; i++) {
        const mr_provider_t *p = &cfg->providers[i];
        /* every keyed provider is off without its variable; only keyless ones run */
        if (p->key_env) {
            assert_false(p->enabled);
            disabled++;
        } else {
            assert_true(p->enabled);
            assert_null(p->api_key);
        }
        assert_true(strlen(p->jurisdiction) == 0 || strlen(p->jurisdiction) == 2);
        assert_true(*p->region != '\0');
    }
    assert_int_equal(cfg->n_warnings, disabled);

    ollama = mr_config_find_provider(cfg, "ollama");
    assert_non_null(ollama);
    assert_true(ollama->enabled);
    assert_string_equal(ollama->base_url, "http://127.0.0.1:11434/v1");
    assert_string_equal(ollama->vendor, "ollama");
    assert_string_equal(ollama->region, "local");
    assert_int_equal(disabled, cfg->n_providers - 1);

    /* every route has targets; "chat" must not fall back to a local model,
     * "local" must work out of the box */
    assert_non_null(mr_config_find_route(cfg, "chat"));
    assert_non_null(mr_config_find_route(cfg, "fast"));
    assert_non_null(mr_config_find_route(cfg, "embed"));
    assert_non_null(mr_config_find_route(cfg, "local"));
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const mr_route_t *r = &cfg->routes[i];
        assert_true(r->n_targets >= 1);
        assert_true(r->max_attempts >= 1 && r->max_attempts <= 16);
        if (strcmp(r->name, "local"))
            for (size_t j = 0; j < r->n_targets; j++)
                assert_false(r->targets[j].provider->enabled);
    }
    assert_ptr_equal(mr_config_find_route(cfg, "local")->targets[0].provider, ollama);
    {
        const mr_route_t *chat = mr_config_find_route(cfg, "chat");
        assert_true(chat->n_targets >= 3);
        for (size_t j = 0; j < chat->n_targets; j++)
            assert_ptr_not_equal(chat->targets[j].provider, ollama);
        /* vendor-diverse: the first two targets differ in vendor */
        assert_string_not_equal(chat->targets[0].provider->vendor,
                                chat->targets[1].provider->vendor);
    }

    out = print_to_string(cfg);
    assert_contains(out, "disabled (OPENAI_API_KEY is not set)");
    assert_contains(out, "-> no enabled target: set ");
    free(out);
    mr_config_free(cfg);
}

/* The shipped catalogue: jurisdictions, example policies, explainable. */
static void test_shipped_config_policies(void **state)
{
    static const char *const jurisdictions[] = {"US", "FR", "DE", "GB", "CN", "KR", "CH"};
    static const char *const policies[] = {"eu-only", "no-cn-no-us", "open-weights", "diverse"};
    mr_config_t *cfg = load_shipped_without_keys();
    const mr_policy_t *p;
    char *out;

    (void)state;
    for (size_t i = 0; i < sizeof(jurisdictions) / sizeof(jurisdictions[0]); i++) {
        bool found = false;
        for (size_t k = 0; k < cfg->n_providers; k++)
            found |= !strcmp(cfg->providers[k].jurisdiction, jurisdictions[i]);
        if (!found) {
            print_error("no provider under jurisdiction %s\n", jurisdictions[i]);
            fail();
        }
    }
    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
        assert_non_null(mr_config_find_policy(cfg, policies[i]));
    assert_non_null(cfg->default_policy);
    assert_string_equal(cfg->default_policy->name, "diverse");
    p = cfg->default_policy;
    assert_int_equal(p->diversity, MR_DIVERSITY_VENDOR);
    assert_true(p->max_vendor_share == 0.5);
    assert_int_equal(p->share_window_s, 60);
    p = mr_config_find_policy(cfg, "eu-only");
    assert_int_equal(p->n_allow, 1);
    assert_string_equal(p->allow[0].attr, "region");
    p = mr_config_find_policy(cfg, "no-cn-no-us");
    assert_string_equal(p->deny[0].attr, "jurisdiction");
    p = mr_config_find_policy(cfg, "open-weights");
    assert_true(p->open_weights_only);
    assert_int_equal(p->strategy, MR_STRATEGY_CHEAPEST);
    /* no keys: loopback only */
    assert_int_equal(cfg->n_keys, 0);
    assert_false(cfg->allow_unauthenticated);
    /* every target names its creator and a license tag */
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t j = 0; j < cfg->routes[i].n_targets; j++) {
            const mr_target_t *t = &cfg->routes[i].targets[j];
            assert_non_null(t->creator);
            assert_non_null(mr_target_attr(t, "license"));
            /* prices come in pairs */
            assert_int_equal(t->has_input_price, t->has_output_price);
        }
    /* the creator is not the host: DeepSeek weights from DeepSeek and from a US host */
    {
        const mr_route_t *open = mr_config_find_route(cfg, "open");
        bool us_host = false, cn_host = false;
        assert_non_null(open);
        for (size_t j = 0; j < open->n_targets; j++) {
            const mr_target_t *t = &open->targets[j];
            if (strcmp(t->creator, "deepseek"))
                continue;
            cn_host |= !strcmp(t->provider->jurisdiction, "CN");
            us_host |= !strcmp(t->provider->jurisdiction, "US");
        }
        assert_true(cn_host && us_host);
    }
    out = print_to_string(cfg);
    assert_contains(out, "policies: (default diverse)\n");
    assert_contains(out, "keys: (none: unauthenticated, loopback only)\n");
    free(out);
    mr_config_free(cfg);
}

static void test_shipped_config_with_env(void **state)
{
    char err[1024];
    mr_config_t *cfg;
    const mr_provider_t *p;

    (void)state;
    mr_config_free(load_shipped_without_keys());
    setenv("MISTRAL_API_KEY", "sk-mistral-test", 1);
    setenv("OLLAMA_BASE_URL", "http://10.0.0.5:11434/v1/", 1);
    assert_int_equal(mr_config_load_file(SHIPPED, &cfg, err, sizeof(err)), 0);
    p = mr_config_find_provider(cfg, "mistral");
    assert_true(p->enabled);
    assert_string_equal(p->api_key, "sk-mistral-test");
    assert_string_equal(mr_config_find_provider(cfg, "ollama")->base_url,
                        "http://10.0.0.5:11434/v1");
    assert_int_equal(cfg->n_warnings, cfg->n_providers - 2);
    mr_config_free(cfg);
    unsetenv("MISTRAL_API_KEY");
    unsetenv("OLLAMA_BASE_URL");
}

/* ------------------------------------------------------------------------ */
/* Limits, budgets and the shared state (issue 16)                            */
/* ------------------------------------------------------------------------ */

#define KEY_WITH(fields) "\"keys\":{\"k\":{\"sha256\":\"" HEX64 "\"" fields "}}"

static const err_case_t state_err_cases[] = {
    {"{" PROVS ",\"state\":{\"backend\":\"etcd\"}}",
     "x.json: state.backend: must be one of memory, redis (got \"etcd\")"},
    {"{" PROVS ",\"state\":{\"backend\":\"redis\"}}",
     "x.json: state: \"backend\": \"redis\" needs \"redis_url\""},
    {"{" PROVS ",\"state\":{\"redis_url\":\"http://u:hunter22@h/0\"}}",
     "x.json: state.redis_url: must be a redis URL such as redis://10.0.0.5:6379/0"},
    {"{" PROVS ",\"state\":{\"on_outage\":\"wait\"}}",
     "state.on_outage: must be one of local, deny (got \"wait\")"},
    {"{" PROVS ",\"state\":{\"file\":\"\"}}", "state.file: must not be empty"},
    {"{" PROVS ",\"state\":{\"bakend\":\"memory\"}}",
     "state.bakend: unknown key (did you mean \"backend\"?)"},
    {"{" PROVS "," KEY_WITH(",\"limits\":{\"rpm\":0}") "}",
     "x.json: keys.k.limits.rpm: must be an integer from 1 to 100000000 (got 0)"},
    {"{" PROVS "," KEY_WITH(",\"limits\":{\"budget_usd\":0}") "}",
     "x.json: keys.k.limits.budget_usd: must be a number"},
    {"{" PROVS "," KEY_WITH(",\"limits\":{\"budget_period\":\"week\"}") "}",
     "keys.k.limits.budget_period: must be one of total, day, month (got \"week\")"},
    {"{" PROVS "," KEY_WITH(",\"limits\":{\"rpn\":3}") "}",
     "keys.k.limits.rpn: unknown key (did you mean \"rpm\"?)"},
    {"{" PROVS "," KEY_WITH(",\"limits\":[]") "}", "keys.k.limits: must be an object"},
    {"{" PROVS "," KEY_WITH(",\"admin\":1") "}", "keys.k.admin: must be true or false"},
    {PROV_WITH("\"budget_usd\":-1"), "x.json: providers.a.budget_usd: must be a number"},
    {PROV_WITH("\"budget_period\":\"day\",\"budget_usd\":\"5\""),
     "providers.a.budget_usd: must be a number"},
};

static void test_state_and_limits(void **state)
{
    char err[1024];
    mr_config_t *cfg;
    char *out;

    (void)state;
    for (size_t i = 0; i < sizeof(state_err_cases) / sizeof(state_err_cases[0]); i++) {
        cfg = NULL;
        assert_int_equal(
            mr_config_load_string(state_err_cases[i].json, "x.json", &cfg, err, sizeof(err)), -1);
        assert_contains(err, state_err_cases[i].want);
        assert_not_contains(err, "hunter22");
    }

    cfg = load_ok("{" PROVS "}");
    assert_int_equal(cfg->state.backend, 0);
    assert_int_equal(cfg->state.on_outage, 0);
    assert_null(cfg->state.redis_url);
    assert_null(cfg->state.file);
    out = print_to_string(cfg);
    assert_contains(out, "\nstate backend=memory redis_url=none on_outage=local file=none\n");
    free(out);
    mr_config_free(cfg);

    setenv("MR_T_REDIS_PW", "hunter22", 1);
    cfg = load_ok("{\"providers\":{\"a\":{\"kind\":\"openai\",\"base_url\":\"http://h/v1\","
                  "\"budget_usd\":2.5,\"budget_period\":\"month\",\"max_inflight\":4}},"
                  "\"state\":{\"backend\":\"redis\","
                  "\"redis_url\":\"redis://:${MR_T_REDIS_PW}@10.0.0.5:6380/"
                  "2\",\"on_outage\":\"deny\"}," KEY_WITH(
                      ",\"admin\":true,\"limits\":{\"rpm\":30,\"tpm\":1000,"
                      "\"max_parallel\":2,\"budget_usd\":1.25,\"budget_period\":\"day\"}") "}");
    assert_int_equal(cfg->state.backend, 1);
    assert_int_equal(cfg->state.on_outage, 1);
    assert_string_equal(cfg->state.redis_url, "redis://:hunter22@10.0.0.5:6380/2");
    assert_true(cfg->providers[0].budget_usd == 2.5);
    assert_int_equal(cfg->providers[0].budget_period, MR_PERIOD_MONTH);
    const mr_key_t *k = &cfg->keys[0];
    assert_true(k->admin);
    assert_int_equal(k->limits.rpm, 30);
    assert_int_equal(k->limits.tpm, 1000);
    assert_int_equal(k->limits.max_parallel, 2);
    assert_true(k->limits.budget_usd == 1.25);
    assert_int_equal(k->limits.budget_period, MR_PERIOD_DAY);
    out = print_to_string(cfg);
    assert_contains(out, "\nstate backend=redis redis_url=redis://***@10.0.0.5:6380/2 "
                         "on_outage=deny file=none\n");
    assert_contains(out, "enabled max_inflight=4 budget_usd=2.5 budget_period=month\n");
    assert_contains(out, "\n  k  admin  limits rpm=30 tpm=1000 max_parallel=2 budget_usd=1.25 "
                         "budget_period=day\n");
    assert_not_contains(out, "hunter22");
    free(out);
    mr_config_free(cfg);
    unsetenv("MR_T_REDIS_PW");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_exact_messages),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_max_targets),
        cmocka_unit_test(test_disabled_providers),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_print_table),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_policies_loaded),
        cmocka_unit_test(test_exposure),
        cmocka_unit_test(test_min_vendors),
        cmocka_unit_test(test_print_policies),
        cmocka_unit_test(test_no_credentials_in_errors),
        cmocka_unit_test(test_shipped_config),
        cmocka_unit_test(test_shipped_config_policies),
        cmocka_unit_test(test_shipped_config_with_env),
        cmocka_unit_test(test_state_and_limits),
    };
    return cmocka_run_group_tests(tests, setup_env, NULL);
}

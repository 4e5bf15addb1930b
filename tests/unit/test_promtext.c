/*
 * promtext (tests/integration/promtext.c), the strict Prometheus text-format
 * parser the integration tests check GET /metrics with: realistic documents,
 * escapes, histograms and summaries, every strictness rule accepted and
 * rejected (with the line number), the queries, and the promtool runner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../integration/promtext.c"

/* Parses text, which must succeed. */
static void parse_ok(const char *text, prom_doc_t *d)
{
    char err[256];
    int rc = prom_parse(text, strlen(text), d, err, sizeof(err));
    if (rc != 0)
        fail_msg("unexpected parse error: %s\n--- text ---\n%s", err, text);
}

static void accept(const char *text)
{
    prom_doc_t d;
    parse_ok(text, &d);
    prom_free(&d);
}

/* Parsing must fail with "line <line>: ..." containing `why`. */
static void reject_at(const char *text, size_t len, size_t line, const char *why)
{
    prom_doc_t d;
    char err[256], want[32];
    memset(&d, 0x5a, sizeof(d));
    int rc = prom_parse(text, len, &d, err, sizeof(err));
    if (rc != -1)
        fail_msg("accepted, expected an error at line %zu (%s)\n--- text ---\n%s", line, why, text);
    assert_null(d.samples);
    assert_int_equal(d.n_samples, 0);
    assert_null(d.families);
    assert_int_equal(d.n_families, 0);
    snprintf(want, sizeof(want), "line %zu: ", line);
    if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, why))
        fail_msg("error \"%s\", expected \"%s...%s\"\n--- text ---\n%s", err, want, why, text);
}

static void reject(const char *text, size_t line, const char *why)
{
    reject_at(text, strlen(text), line, why);
}

static const prom_family_t *family(const prom_doc_t *d, const char *name)
{
    for (size_t i = 0; i < d->n_families; i++)
        if (strcmp(d->families[i].name, name) == 0)
            return &d->families[i];
    fail_msg("no family %s", name);
    return NULL;
}

static const char *label(const prom_sample_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_labels; i++)
        if (strcmp(s->label_names[i], name) == 0)
            return s->label_values[i];
    return NULL;
}

/* ------------------------------------------------------------ documents */

static const char realistic[] =
    "# A leading comment, then a blank line.\n"
    "\n"
    "# HELP meridian_build_info Meridian's version.\n"
    "# TYPE meridian_build_info gauge\n"
    "meridian_build_info{version=\"0.1.0\"} 1\n"
    "# HELP meridian_requests_total Requests by route and status class \\\\ with a\\nsecond line.\n"
    "# TYPE meridian_requests_total counter\n"
    "meridian_requests_total{route=\"chat\",provider=\"openai\",status_class=\"2xx\"} 12\n"
    "meridian_requests_total{route=\"chat\",provider=\"openai\",status_class=\"5xx\"} 3\n"
    "meridian_requests_total{route=\"embed\",provider=\"azure \\\"eu\\\"\",status_class=\"2xx\"} "
    "4 1700000000000\n"
    "meridian_requests_total{route=\"a\\\\b\",provider=\"multi\\nline\",status_class=\"2xx\",} 0\n"
    "# TYPE meridian_request_duration_seconds histogram\n"
    "# HELP meridian_request_duration_seconds Request start to last byte.\n"
    "meridian_request_duration_seconds_bucket{route=\"chat\",stream=\"false\",le=\"0.005\"} 0\n"
    "meridian_request_duration_seconds_bucket{route=\"chat\",stream=\"false\",le=\"0.1\"} 2\n"
    "meridian_request_duration_seconds_bucket{route=\"chat\",stream=\"false\",le=\"1\"} 5\n"
    "meridian_request_duration_seconds_bucket{route=\"chat\",stream=\"false\",le=\"+Inf\"} 7\n"
    "meridian_request_duration_seconds_sum{route=\"chat\",stream=\"false\"} 4.25\n"
    "meridian_request_duration_seconds_count{route=\"chat\",stream=\"false\"} 7\n"
    "meridian_request_duration_seconds_bucket{stream=\"true\",route=\"chat\",le=\"0.005\"} 1\n"
    "meridian_request_duration_seconds_bucket{le=\"1e-1\",route=\"chat\",stream=\"true\"} 1\n"
    "meridian_request_duration_seconds_bucket{route=\"chat\",stream=\"true\",le=\"+Inf\"} 1\n"
    "meridian_request_duration_seconds_count{route=\"chat\",stream=\"true\"} 1\n"
    "meridian_request_duration_seconds_sum{route=\"chat\",stream=\"true\"} 0.001\n"
    "# HELP rpc_latency_seconds A summary.\n"
    "# TYPE rpc_latency_seconds summary\n"
    "rpc_latency_seconds{quantile=\"0.5\"} 0.2\n"
    "rpc_latency_seconds{quantile=\"0.99\"} NaN\n"
    "rpc_latency_seconds_sum 17.5\n"
    "rpc_latency_seconds_count 80\n"
    "# TYPE meridian_breaker_state gauge\n"
    "meridian_breaker_state{provider=\"p1\",state=\"closed\"} 2\n"
    "meridian_breaker_state{provider=\"p1\",state=\"open\"} -1.5e0\n"
    "meridian_breaker_state{provider=\"p2\",state=\"closed\"} +Inf\n"
    "  legacy_untyped_metric  { a = \"x\" , b=\"y\" }   -Inf   -12  \n"
    "# TYPE retry_denied_total counter\n"
    "retry_denied_total{} 0\n"
    "# TYPE explicit_untyped untyped\n"
    "explicit_untyped NaN\n"
    "\t\n"
    "# HELP only_help Help without samples or type.\n"
    "#HELP compact_help compact form\n"
    "# just a comment with # HELP inside it\n";

static void test_realistic(void **state)
{
    prom_doc_t d;
    (void)state;

    parse_ok(realistic, &d);
    assert_int_equal(d.n_samples, 26);
    assert_int_equal(d.n_families, 10);

    const prom_family_t *f = family(&d, "meridian_requests_total");
    assert_string_equal(f->type, "counter");
    assert_string_equal(f->help, "Requests by route and status class \\ with a\nsecond line.");
    f = family(&d, "meridian_request_duration_seconds");
    assert_string_equal(f->type, "histogram");
    assert_string_equal(f->help, "Request start to last byte.");
    assert_string_equal(family(&d, "rpc_latency_seconds")->type, "summary");
    assert_string_equal(family(&d, "meridian_breaker_state")->type, "gauge");
    assert_null(family(&d, "meridian_breaker_state")->help);
    assert_string_equal(family(&d, "legacy_untyped_metric")->type, "untyped");
    assert_string_equal(family(&d, "explicit_untyped")->type, "untyped");
    assert_string_equal(family(&d, "only_help")->type, "untyped");
    assert_string_equal(family(&d, "only_help")->help, "Help without samples or type.");
    assert_string_equal(family(&d, "compact_help")->help, "compact form");
    /* Families in order of first appearance. */
    assert_string_equal(d.families[0].name, "meridian_build_info");
    assert_string_equal(d.families[9].name, "compact_help");

    /* Label values unescaped, labels in the order written. */
    const prom_sample_t *s = &d.samples[3];
    assert_string_equal(s->name, "meridian_requests_total");
    assert_string_equal(s->family, "meridian_requests_total");
    assert_int_equal(s->n_labels, 3);
    assert_string_equal(s->label_names[1], "provider");
    assert_string_equal(s->label_values[1], "azure \"eu\"");
    assert_true(s->value == 4);
    s = &d.samples[4];
    assert_string_equal(label(s, "route"), "a\\b");
    assert_string_equal(label(s, "provider"), "multi\nline");

    /* Histogram and summary samples belong to their family. */
    s = &d.samples[5];
    assert_string_equal(s->name, "meridian_request_duration_seconds_bucket");
    assert_string_equal(s->family, "meridian_request_duration_seconds");
    assert_string_equal(label(s, "le"), "0.005");
    assert_string_equal(d.samples[10].family, "meridian_request_duration_seconds");
    assert_string_equal(d.samples[16].name, "rpc_latency_seconds");
    assert_true(isnan(d.samples[17].value));
    assert_string_equal(d.samples[19].name, "rpc_latency_seconds_count");
    assert_string_equal(d.samples[19].family, "rpc_latency_seconds");

    s = &d.samples[23];
    assert_string_equal(s->name, "legacy_untyped_metric");
    assert_string_equal(label(s, "a"), "x");
    assert_string_equal(label(s, "b"), "y");
    assert_true(isinf(s->value) && s->value < 0);
    assert_true(isinf(d.samples[22].value) && d.samples[22].value > 0);
    assert_true(d.samples[21].value == -1.5);
    assert_string_equal(d.samples[24].name, "retry_denied_total");
    assert_int_equal(d.samples[24].n_labels, 0);
    assert_null(d.samples[24].label_names);

    /* Queries. */
    assert_true(prom_sum(&d, "meridian_requests_total", NULL) == 19);
    const char *const chat[] = {"route", "chat", NULL};
    assert_true(prom_sum(&d, "meridian_requests_total", chat) == 15);
    const char *const chat5[] = {"route", "chat", "status_class", "5xx", NULL};
    assert_true(prom_sum(&d, "meridian_requests_total", chat5) == 3);
    const char *const eu[] = {"provider", "azure \"eu\"", NULL};
    assert_true(prom_sum(&d, "meridian_requests_total", eu) == 4);
    const char *const none[] = {"route", "nope", NULL};
    assert_true(isnan(prom_sum(&d, "meridian_requests_total", none)));
    const char *const nolabel[] = {"zone", "a", NULL};
    assert_true(isnan(prom_sum(&d, "meridian_requests_total", nolabel)));
    assert_true(isnan(prom_sum(&d, "no_such_metric", NULL)));
    const char *const inf[] = {"le", "+Inf", NULL};
    assert_true(prom_sum(&d, "meridian_request_duration_seconds_bucket", inf) == 8);
    assert_true(prom_sum(&d, "meridian_request_duration_seconds_count", NULL) == 8);
    assert_true(prom_sum(&d, "retry_denied_total", NULL) == 0);
    assert_int_equal(prom_count(&d, "meridian_request_duration_seconds_bucket"), 7);
    assert_int_equal(prom_count(&d, "meridian_requests_total"), 4);
    assert_int_equal(prom_count(&d, "meridian_request_duration_seconds"), 0);
    assert_int_equal(prom_count(&d, "nothing"), 0);

    prom_free(&d);
    assert_null(d.samples);
    assert_int_equal(d.n_families, 0);
    prom_free(&d); /* twice is harmless */
    prom_free(NULL);
}

static void test_empty_and_blank(void **state)
{
    prom_doc_t d;
    (void)state;
    parse_ok("", &d);
    assert_int_equal(d.n_samples, 0);
    assert_int_equal(d.n_families, 0);
    prom_free(&d);
    accept("\n\n \t \n# only comments\n#\n# \n");
    accept("x 1\n\n\ny 2\n");
    assert_true(isnan(prom_sum(&d, "x", NULL)));
    assert_int_equal(prom_count(&d, "x"), 0);
}

/* ---------------------------------------------------------------- lines */

static void test_final_newline(void **state)
{
    (void)state;
    accept("x 1\n");
    reject("x 1", 1, "no line feed at the end");
    reject("# HELP x h\nx 1", 2, "no line feed at the end");
    reject("x 1\n# comment", 2, "no line feed");
    reject("x 1\n\n  ", 3, "no line feed");
    /* An earlier error is the one reported. */
    reject("x 1\nx 2\ny 3", 2, "duplicate series");
}

static void test_nul_byte(void **state)
{
    (void)state;
    static const char in_label[] = "x 1\ny{a=\"\0\"} 2\n";
    static const char in_comment[] = "x 1\n# comment \0\n";
    reject_at(in_label, sizeof(in_label) - 1, 2, "NUL byte");
    reject_at(in_comment, sizeof(in_comment) - 1, 2, "NUL byte");
}

static void test_comments_help_type(void **state)
{
    prom_doc_t d;
    (void)state;

    /* HELP without text, HELP text with trailing blanks, generic comments. */
    parse_ok("# HELP x\n# HELP y  spaced  text  \n# TYPE x gauge   \n# HELPx not help\n"
             "# help lower case is a comment\n# TYPEx nor this\n#TYPE y counter\nx 1\ny 2\n",
             &d);
    assert_string_equal(family(&d, "x")->help, "");
    assert_string_equal(family(&d, "y")->help, "spaced  text  ");
    assert_string_equal(family(&d, "y")->type, "counter");
    assert_string_equal(family(&d, "x")->type, "gauge");
    assert_int_equal(d.n_families, 2);
    prom_free(&d);

    parse_ok("# HELP h a \\\\ b \\n c \xc3\xa9 \xe2\x82\xac \"quoted\" {braces}\n", &d);
    assert_string_equal(d.families[0].help,
                        "a \\ b \n c \xc3\xa9 \xe2\x82\xac \"quoted\" {braces}");
    prom_free(&d);

    for (int t = 0; t < 5; t++) {
        static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
        char buf[64];
        snprintf(buf, sizeof(buf), "# TYPE m %s\n", types[t]);
        parse_ok(buf, &d);
        assert_string_equal(d.families[0].type, types[t]);
        prom_free(&d);
    }

    reject("x 1\n# HELP\n", 2, "HELP line without a metric name");
    reject("# TYPE   \n", 1, "TYPE line without a metric name");
    reject("# HELP 1x text\n", 1, "invalid metric name \"1x\"");
    reject("# HELP x-y text\n", 1, "invalid metric name \"x-y\"");
    reject("# TYPE x\n", 1, "without a type");
    reject("# TYPE x   \n", 1, "without a type");
    reject("# TYPE x Counter\n", 1, "unknown metric type \"Counter\"");
    reject("# TYPE x COUNTER\n", 1, "unknown metric type");
    reject("# TYPE x gauge_histogram\n", 1, "unknown metric type");
    reject("# TYPE x info\n", 1, "unknown metric type");
    reject("# TYPE x counter gauge\n", 1, "text after the type");
    reject("# HELP x a\n# TYPE x gauge\n# HELP x b\n", 3, "second HELP line for x");
    reject("# TYPE x gauge\n# HELP x a\n# TYPE x gauge\n", 3, "second TYPE line for x");
    reject("# HELP x a\n\nx 1\n# HELP x b\n", 4, "second HELP line");
    reject("x 1\n# TYPE x counter\n", 2, "TYPE line for x after its first sample");
    reject("# HELP x a \\t b\n", 1, "invalid escape sequence \"\\t\" in HELP");
    reject("# HELP x a \\\" b\n", 1, "invalid escape sequence");
    reject("# HELP x ends in \\\n", 1, "lone backslash");
    reject("# HELP x bad \xc3\x28 utf8\n", 1, "not valid UTF-8");
    reject("# HELP x overlong \xc0\xaf\n", 1, "not valid UTF-8");
    reject("# HELP x surrogate \xed\xa0\x80\n", 1, "not valid UTF-8");
    reject("# HELP x truncated \xe2\x82\n", 1, "not valid UTF-8");
}

/* ---------------------------------------------------------------- names */

static void test_metric_names(void **state)
{
    prom_doc_t d;
    (void)state;
    parse_ok("a 1\n_b 2\n:c:d 3\nE_f9: 4\nrecord:rule:sum 5\nx{} 6\nx2{}7\n", &d);
    assert_int_equal(d.n_samples, 7);
    assert_string_equal(d.samples[2].name, ":c:d");
    assert_true(d.samples[6].value == 7);
    prom_free(&d);

    reject("ok 1\n1x 1\n", 2, "invalid metric name");
    reject("x-y 1\n", 1, "invalid character '-'");
    reject("x.y 1\n", 1, "invalid character '.'");
    reject("{__name__=\"x\"} 1\n", 1, "invalid metric name");
    reject("\"x\" 1\n", 1, "invalid metric name");
    reject("x\xc3\xa9 1\n", 1, "in metric name");
    reject("x\n", 1, "without a value");
    reject("x   \n", 1, "without a value");
    reject("x{a=\"b\"}\n", 1, "without a value");
}

static void test_label_names(void **state)
{
    prom_doc_t d;
    (void)state;
    parse_ok("x{a=\"1\",_b=\"2\",C9_d=\"3\",e_=\"\"} 1\n", &d);
    assert_int_equal(d.samples[0].n_labels, 4);
    assert_string_equal(label(&d.samples[0], "_b"), "2");
    assert_string_equal(label(&d.samples[0], "e_"), "");
    prom_free(&d);

    reject("x{1a=\"v\"} 1\n", 1, "invalid label name");
    reject("x{a-b=\"v\"} 1\n", 1, "expected '=' after label name \"a\"");
    reject("x{a:b=\"v\"} 1\n", 1, "expected '='");
    reject("x{__name__=\"x\"} 1\n", 1, "starts with \"__\"");
    reject("x{__x=\"v\"} 1\n", 1, "starts with \"__\"");
    reject("x{a=\"1\",b=\"2\",a=\"3\"} 1\n", 1, "duplicate label name \"a\"");
    reject("x{a=\"1\",a=\"1\"} 1\n", 1, "duplicate label name");
    reject("x{a=v} 1\n", 1, "expected '\"'");
    reject("x{a='v'} 1\n", 1, "expected '\"'");
    reject("x{a} 1\n", 1, "expected '='");
}

static void test_label_syntax(void **state)
{
    prom_doc_t d;
    (void)state;
    /* Trailing comma, {} and blanks between tokens are allowed. */
    parse_ok("x{a=\"1\",} 1\ny{} 2\nz { a = \"1\" ,\tb=\"2\" , } 3\n", &d);
    assert_int_equal(d.samples[0].n_labels, 1);
    assert_int_equal(d.samples[1].n_labels, 0);
    assert_int_equal(d.samples[2].n_labels, 2);
    assert_string_equal(label(&d.samples[2], "b"), "2");
    prom_free(&d);

    reject("x{,} 1\n", 1, "invalid label name");
    reject("x{a=\"1\",,} 1\n", 1, "invalid label name");
    reject("x{a=\"1\" b=\"2\"} 1\n", 1, "expected ',' or '}'");
    reject("x{a=\"1\"\n", 1, "expected ',' or '}'");
    reject("x{a=\"1\",\n", 1, "unterminated label set");
    reject("x{\n", 1, "unterminated label set");
    reject("x{a=\"1} 1\n", 1, "unterminated value of label \"a\"");
    reject("x{a=\"1\\\"} 1\n", 1, "unterminated value");
    reject("x{a=\"1\\", 1, "no line feed");
    reject("x{a=\"1\\\n", 1, "unterminated value");
    reject("x{a=\"1\"}} 1\n", 1, "invalid value \"}\"");
}

static void test_label_escapes(void **state)
{
    prom_doc_t d;
    (void)state;
    parse_ok("x{q=\"say \\\"hi\\\"\",b=\"C:\\\\dir\\\\\",n=\"l1\\nl2\\n\",all=\"\\\\\\\"\\n\","
             "u=\"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\",raw=\"a,b}c=d{e 'f' #g\"} 1\n",
             &d);
    const prom_sample_t *s = &d.samples[0];
    assert_string_equal(label(s, "q"), "say \"hi\"");
    assert_string_equal(label(s, "b"), "C:\\dir\\");
    assert_string_equal(label(s, "n"), "l1\nl2\n");
    assert_string_equal(label(s, "all"), "\\\"\n");
    assert_string_equal(label(s, "u"), "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80");
    assert_string_equal(label(s, "raw"), "a,b}c=d{e 'f' #g");
    const char *const f[] = {"q", "say \"hi\"", "n", "l1\nl2\n", NULL};
    assert_true(prom_sum(&d, "x", f) == 1);
    prom_free(&d);

    reject("x{a=\"\\t\"} 1\n", 1, "invalid escape sequence \"\\t\" in the value of label \"a\"");
    reject("x{a=\"\\x41\"} 1\n", 1, "invalid escape sequence \"\\x\"");
    reject("x{a=\"\\'\"} 1\n", 1, "invalid escape sequence");
    reject("x{a=\"\\u00e9\"} 1\n", 1, "invalid escape sequence");
    reject("x{a=\"\\r\"} 1\n", 1, "invalid escape sequence");
    reject("x{a=\"ok\"} 1\nx{a=\"\\N\"} 1\n", 2, "invalid escape sequence \"\\N\"");
    reject("x{a=\"\xff\"} 1\n", 1, "not valid UTF-8");
    reject("x{a=\"\xf4\x90\x80\x80\"} 1\n", 1, "not valid UTF-8"); /* > U+10FFFF */
    reject("x{a=\"\xe0\x80\x80\"} 1\n", 1, "not valid UTF-8");     /* overlong */
}

/* --------------------------------------------------------------- values */

static void test_values(void **state)
{
    static const struct {
        const char *text;
        double want;
    } ok[] = {
        {"0", 0},
        {"-0", 0},
        {"1", 1},
        {"+3", 3},
        {"-1.5", -1.5},
        {"1e3", 1000},
        {"1E-3", 0.001},
        {"2.5e+2", 250},
        {".5", 0.5},
        {"5.", 5},
        {"-.25e1", -2.5},
        {"007", 7},
        {"1e-400", 0},
        {"123456789012345678901234567890", 1.2345678901234568e29},
        {"1.7976931348623157e308", 1.7976931348623157e308},
    };
    static const char *const bad[] = {
        "Inf",  "inf",      "+inf", "-inf",   "INF", "nan",   "NAN",    "+NaN",
        "-NaN", "Infinity", "0x10", "0x1p-2", "1e",  "1e+",   "e5",     "--1",
        "+-1",  "1.2.3",    "abc",  "1_000",  "1,5", ".",     "+",      "-",
        "1e5.", "1f",       "1ee2", "0b1",    "٣",   "1e999", "-1e999",
    };
    prom_doc_t d;
    char buf[128];
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(buf, sizeof(buf), "m %s\n", ok[i].text);
        parse_ok(buf, &d);
        if (d.samples[0].value != ok[i].want)
            fail_msg("%s parsed as %.17g", ok[i].text, d.samples[0].value);
        prom_free(&d);
    }
    parse_ok("a +Inf\nb -Inf\nc NaN\n", &d);
    assert_true(isinf(d.samples[0].value) && d.samples[0].value > 0);
    assert_true(isinf(d.samples[1].value) && d.samples[1].value < 0);
    assert_true(isnan(d.samples[2].value));
    prom_free(&d);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "ok 1\nm %s\n", bad[i]);
        reject(buf, 2, strstr(bad[i], "999") ? "out-of-range value" : "invalid value");
    }
}

static void test_timestamps(void **state)
{
    prom_doc_t d;
    (void)state;
    parse_ok("a 1 1700000000000\nb{x=\"y\"} 2 -5\nc 3 +7\nd 4 9223372036854775807\n"
             "e 5\t0\t\n",
             &d);
    assert_int_equal(d.n_samples, 5);
    assert_true(d.samples[1].value == 2);
    prom_free(&d);

    reject("a 1 1.5\n", 1, "invalid timestamp \"1.5\"");
    reject("a 1 1e3\n", 1, "invalid timestamp");
    reject("a 1 abc\n", 1, "invalid timestamp");
    reject("a 1 -\n", 1, "invalid timestamp");
    reject("a 1 NaN\n", 1, "invalid timestamp");
    reject("a 1 9223372036854775808\n", 1, "out-of-range timestamp");
    reject("a 1 2 3\n", 1, "unexpected text after the timestamp");
    reject("a 1 2 # comment\n", 1, "unexpected text after the timestamp");
}

/* ------------------------------------------------------------ structure */

static void test_contiguity(void **state)
{
    prom_doc_t d;
    (void)state;
    /* Metadata of several families first, then their samples: fine. */
    parse_ok("# HELP a A.\n# HELP b B.\n# TYPE a counter\n# TYPE b gauge\na 1\nb 2\n", &d);
    assert_string_equal(family(&d, "a")->type, "counter");
    prom_free(&d);
    /* HELP after the family's own samples, before another family's. */
    accept("a{x=\"1\"} 1\n# HELP a late help\na{x=\"2\"} 2\nb 1\n");
    /* Comments and blank lines do not end a family. */
    accept("a{x=\"1\"} 1\n# comment\n\na{x=\"2\"} 2\n");

    reject("a{x=\"1\"} 1\nb 1\na{x=\"2\"} 2\n", 3, "sample for family a after another family");
    reject("a 1\n# HELP b B.\na{x=\"2\"} 2\n", 3, "must be contiguous");
    reject("a 1\nb 1\n# HELP a late\n", 3, "HELP for family a after another family");
    reject("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nother 1\nh_count 1\n", 4,
           "sample for family h after another family");
}

static void test_duplicate_series(void **state)
{
    (void)state;
    accept("x{a=\"1\",b=\"2\"} 1\nx{a=\"1\",b=\"3\"} 1\nx{a=\"1\"} 1\nx 1\n");
    reject("x 1\nx 2\n", 2, "duplicate series x");
    reject("x{} 1\nx 2\n", 2, "duplicate series x");
    reject("x{a=\"1\",b=\"2\"} 1\nx{b=\"2\",a=\"1\"} 2\n", 2,
           "duplicate series x{b=\"2\",a=\"1\"}");
    reject("x{a=\"q\\\"\"} 1\nx{a=\"q\\\"\",} 2\n", 2, "duplicate series x{a=\"q\\\"\"}");
    reject("x 1 100\nx 1 200\n", 2, "duplicate series");
}

/* ---------------------------------------------------------------- types */

static void test_counter(void **state)
{
    (void)state;
    accept("# TYPE c counter\nc 0\nc{a=\"1\"} 1.5\nc{a=\"2\"} +Inf\nc{a=\"3\"} 1e300\n");
    accept("# TYPE g gauge\ng -1\n# TYPE u untyped\nu -1\nno_type -1\n");
    reject("# TYPE c counter\nc{a=\"1\"} 1\nc{a=\"2\"} -1\n", 3, "counter c is -1");
    reject("# TYPE c counter\nc -Inf\n", 2, "counters must be >= 0");
    reject("# TYPE c counter\nc NaN\n", 2, "counters must be >= 0");
    reject("# TYPE c counter\nc -0.0001\n", 2, "counters must be >= 0");
}

static const char good_histogram[] = "# HELP h Latency.\n"
                                     "# TYPE h histogram\n"
                                     "h_bucket{le=\"-1\"} 0\n"
                                     "h_bucket{le=\"0\"} 0\n"
                                     "h_bucket{le=\"0.25\"} 3\n"
                                     "h_bucket{le=\"2.5e-1\",p=\"x\"} 0\n"
                                     "h_bucket{le=\"1\"} 3\n"
                                     "h_bucket{le=\"+Inf\"} 4\n"
                                     "h_bucket{p=\"x\",le=\"+Inf\"} 0\n"
                                     "h_sum -0.5\n"
                                     "h_count 4\n"
                                     "h_count{p=\"x\"} 0\n";

static void test_histogram(void **state)
{
    prom_doc_t d;
    (void)state;
    parse_ok(good_histogram, &d);
    assert_int_equal(d.n_families, 1);
    assert_int_equal(d.n_samples, 10);
    for (size_t i = 0; i < d.n_samples; i++)
        assert_string_equal(d.samples[i].family, "h");
    const char *const x[] = {"p", "x", NULL};
    assert_true(prom_sum(&d, "h_count", x) == 0);
    assert_true(prom_sum(&d, "h_count", NULL) == 4);
    prom_free(&d);

    /* Only +Inf; sum and count before buckets; no _sum at all. */
    accept("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 0\nh_count 0\n");
    accept("# TYPE h histogram\nh_sum 1\nh_count 2\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} "
           "2\n");
    /* A histogram with no samples at all. */
    accept("# TYPE h histogram\n# TYPE g gauge\ng 1\n");

    reject("# TYPE h histogram\nh 1\n", 2, "sample h in histogram h: only h_bucket");
    /* Another suffix is another (untyped) family. */
    accept("# TYPE h histogram\nh_total 1\n");
    reject("# TYPE h histogram\nh_bucket 1\n", 2, "h_bucket without a \"le\" label");
    reject("# TYPE h histogram\nh_bucket{x=\"1\"} 1\n", 2, "without a \"le\" label");
    reject("# TYPE h histogram\nh_bucket{le=\"abc\"} 1\n", 2,
           "le=\"abc\" of h_bucket is not a number");
    reject("# TYPE h histogram\nh_bucket{le=\"Inf\"} 1\n", 2, "is not a number");
    reject("# TYPE h histogram\nh_bucket{le=\"NaN\"} 1\n", 2, "is not a number");
    reject("# TYPE h histogram\nh_bucket{le=\"\"} 1\n", 2, "is not a number");
    reject("# TYPE h histogram\nh_bucket{le=\" 1\"} 1\n", 2, "is not a number");
    reject("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"0.5\"} 1\n", 3,
           "le=\"0.5\" of h after le=\"1\": buckets must increase");
    reject("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_bucket{le=\"1\"} 1\n", 3,
           "buckets must increase");
    reject("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1.0\"} 1\n", 3,
           "buckets must increase");
    reject("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1\"} 1\n", 3,
           "duplicate series");
    reject("# TYPE h histogram\nh_bucket{a=\"x\",le=\"1\"} 5\nh_bucket{a=\"x\",le=\"2\"} 4\n", 3,
           "bucket le=\"2\" of h{a=\"x\"} is 4, less than the previous bucket's 5");
    reject("# TYPE h histogram\nh_bucket{le=\"1\"} -1\n", 2, "bucket counts must be >= 0");
    reject("# TYPE h histogram\nh_bucket{le=\"1\"} NaN\n", 2, "bucket counts must be >= 0");
    reject("# TYPE h histogram\nh_sum{le=\"1\"} 1\n", 2, "h_sum has a \"le\" label");
    reject("# TYPE h histogram\nh_count{le=\"+Inf\"} 1\n", 2, "h_count has a \"le\" label");
    reject("# TYPE h histogram\nh_count -1\n", 2, "a count must be >= 0");
    reject("# TYPE h histogram\nh_count NaN\n", 2, "a count must be >= 0");
    /* End-of-document checks, reported at the series' first line. */
    reject("# TYPE h histogram\n\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", 3,
           "histogram h has no le=\"+Inf\" bucket");
    reject("# TYPE h histogram\nh_bucket{a=\"x\",le=\"+Inf\"} 1\nh_bucket{a=\"y\",le=\"+Inf\"} 1\n"
           "h_count{a=\"x\"} 1\n",
           3, "histogram h{a=\"y\"} has no h_count");
    reject("# TYPE h histogram\nh_count 1\n", 2, "histogram h has no le=\"+Inf\" bucket");
    reject("# TYPE h histogram\nh_sum 1\n", 2, "has no le=\"+Inf\" bucket");
    reject("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_count 2\n", 4,
           "histogram h: h_count 2 differs from the +Inf bucket 3");
    reject("# TYPE h histogram\nh_bucket{a=\"1\",le=\"+Inf\"} 3\nh_count{a=\"2\"} 3\n", 2,
           "histogram h{a=\"1\"} has no h_count");
}

static void test_summary(void **state)
{
    prom_doc_t d;
    (void)state;
    parse_ok("# TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"0.5\"} NaN\ns{quantile=\"1\"} 9\n"
             "s_sum -3\ns_count 7\ns{m=\"a\",quantile=\"0.5\"} 2\n",
             &d);
    for (size_t i = 0; i < d.n_samples; i++)
        assert_string_equal(d.samples[i].family, "s");
    prom_free(&d);
    /* Summaries without quantiles, or only _count, are fine. */
    accept("# TYPE s summary\ns_sum 0\ns_count 0\n");
    accept("# TYPE s summary\ns_count 0\n");

    reject("# TYPE s summary\ns 1\n", 2, "s without a \"quantile\" label");
    reject("# TYPE s summary\ns{quantile=\"x\"} 1\n", 2, "quantile=\"x\" of s is not a number");
    reject("# TYPE s summary\ns{quantile=\"1.5\"} 1\n", 2, "outside [0, 1]");
    reject("# TYPE s summary\ns{quantile=\"-0.1\"} 1\n", 2, "outside [0, 1]");
    reject("# TYPE s summary\ns{quantile=\"0.9\"} 1\ns{quantile=\"0.5\"} 1\n", 3,
           "quantiles must increase");
    reject("# TYPE s summary\ns_sum{quantile=\"0.5\"} 1\n", 2, "has a \"quantile\" label");
    reject("# TYPE s summary\ns_count -2\n", 2, "a count must be >= 0");
}

static void test_family_resolution(void **state)
{
    prom_doc_t d;
    (void)state;
    /* Suffixes belong to x only when x is a histogram (or summary for _sum/_count). */
    parse_ok("# TYPE s summary\ns_bucket{le=\"1\"} 1\n# TYPE g gauge\ng_sum 1\ng_count 2\n"
             "u_bucket{le=\"x\"} 5\nu_count 1\n_count 1\n",
             &d);
    assert_string_equal(d.samples[0].family, "s_bucket");
    assert_string_equal(family(&d, "s_bucket")->type, "untyped");
    assert_string_equal(d.samples[1].family, "g_sum");
    assert_string_equal(d.samples[2].family, "g_count");
    assert_string_equal(d.samples[3].family, "u_bucket");
    assert_string_equal(d.samples[4].family, "u_count");
    assert_string_equal(d.samples[5].family, "_count");
    assert_int_equal(d.n_families, 8);
    prom_free(&d);

    /* Families typed on their own before a histogram of the base name. */
    parse_ok("# TYPE h_count counter\nh_count 3\n", &d);
    assert_string_equal(d.samples[0].family, "h_count");
    assert_string_equal(d.families[0].type, "counter");
    prom_free(&d);

    /* Counters are not resolved by suffix: x_total is its own family. */
    parse_ok("# TYPE x counter\nx_total 1\n", &d);
    assert_string_equal(d.samples[0].family, "x_total");
    prom_free(&d);

    reject("# TYPE h histogram\n# HELP h_bucket b\n", 2,
           "HELP line for h_bucket, a sample name of histogram h");
    reject("# TYPE h histogram\n# TYPE h_count counter\n", 2,
           "TYPE line for h_count, a sample name of histogram h");
    reject("# TYPE s summary\n# HELP s_sum s\n", 2, "a sample name of summary s");
    reject("h_sum 1\n# TYPE h histogram\n", 2, "TYPE histogram for h after a family h_sum");
    reject("# HELP s_count c\n# TYPE s summary\n", 2, "TYPE summary for s after a family s_count");
    reject("# TYPE h_bucket gauge\n# TYPE h histogram\n", 2, "after a family h_bucket");
    /* A summary does not claim _bucket. */
    accept("# TYPE s_bucket gauge\n# TYPE s summary\n");
}

/* --------------------------------------------------------------- errors */

static void test_error_buffer(void **state)
{
    prom_doc_t d;
    char small[12];
    (void)state;
    memset(small, 'z', sizeof(small));
    assert_int_equal(prom_parse("x 1\nx y\n", 8, &d, small, sizeof(small)), -1);
    assert_string_equal(small, "line 2: inv");
    assert_int_equal(prom_parse("x y\n", 4, &d, NULL, 0), -1);
    assert_int_equal(prom_parse("x y\n", 4, &d, small, 0), -1);
    /* The length bounds the text: what follows is not read. */
    assert_int_equal(prom_parse("x 1\ngarbage", 4, &d, small, sizeof(small)), 0);
    assert_int_equal(d.n_samples, 1);
    prom_free(&d);
    /* Success clears a previous message. */
    assert_int_equal(prom_parse("", 0, &d, small, sizeof(small)), 0);
    assert_string_equal(small, "");
    prom_free(&d);
}

/* Many series: the hash maps grow, duplicates still found. */
static void test_large_document(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    prom_doc_t d;
    char err[256];
    (void)state;

    fputs("# TYPE big counter\n", f);
    for (int i = 0; i < 5000; i++)
        fprintf(f, "big{i=\"%d\",j=\"%d\"} %d\n", i, i % 7, i);
    fputs("# TYPE lat histogram\n", f);
    for (int i = 0; i < 500; i++) {
        fprintf(f, "lat_bucket{i=\"%d\",le=\"0.1\"} 1\nlat_bucket{i=\"%d\",le=\"+Inf\"} 2\n", i, i);
        fprintf(f, "lat_sum{i=\"%d\"} 1\nlat_count{i=\"%d\"} 2\n", i, i);
    }
    fclose(f);
    assert_int_equal(prom_parse(buf, len, &d, err, sizeof(err)), 0);
    assert_int_equal(d.n_samples, 7000);
    assert_true(prom_sum(&d, "big", NULL) == 4999.0 * 5000 / 2);
    const char *const j3[] = {"j", "3", NULL};
    assert_int_equal(prom_count(&d, "lat_bucket"), 1000);
    assert_true(prom_sum(&d, "big", j3) > 0);
    prom_free(&d);
    free(buf);

    f = open_memstream(&buf, &len);
    for (int i = 0; i < 3000; i++)
        fprintf(f, "big{i=\"%d\"} 1\n", i);
    fputs("big{i=\"1234\"} 1\n", f);
    fclose(f);
    reject(buf, 3001, "duplicate series big{i=\"1234\"}");
    free(buf);
}

/* ------------------------------------------------------------- promtool */

static char *saved_path(void)
{
    const char *p = getenv("PATH");
    return p ? strdup(p) : NULL;
}

static void restore_path(char *old)
{
    if (old)
        setenv("PATH", old, 1);
    else
        unsetenv("PATH");
    free(old);
}

static void test_promtool_absent(void **state)
{
    char dir[] = "/tmp/promtext-empty-XXXXXX";
    char *old = saved_path();
    (void)state;
    assert_non_null(mkdtemp(dir));
    setenv("PATH", dir, 1);
    assert_int_equal(prom_promtool_check("x 1\n", 4), 77);
    setenv("PATH", "", 1);
    assert_int_equal(prom_promtool_check("x 1\n", 4), 77);
    restore_path(old);
    rmdir(dir);

    /* With the real PATH: 77 where promtool is not installed, else a
     * minimal lint-clean document passes. */
    const char *clean = "# HELP up_total Ups.\n# TYPE up_total counter\nup_total 1\n";
    int rc = prom_promtool_check(clean, strlen(clean));
    assert_true(rc == 77 || rc == 0);
}

/* A stand-in promtool on PATH: checks its arguments, passes the input
 * unless it contains "bad". */
static void test_promtool_fake(void **state)
{
    char dir[] = "/tmp/promtext-fake-XXXXXX", tool[64];
    char *old = saved_path();
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(tool, sizeof(tool), "%s/promtool", dir);
    FILE *f = fopen(tool, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\n"
          "[ \"$1 $2 $#\" = \"check metrics 2\" ] || { echo \"usage: $*\"; exit 2; }\n"
          "in=$(cat)\n"
          "case \"$in\" in *bad*) echo \"fake promtool: found bad\"; exit 1;; esac\n"
          "[ -n \"$in\" ] || exit 3\n"
          "exit 0\n",
          f);
    fclose(f);
    assert_int_equal(chmod(tool, 0755), 0);

    /* A directory and a non-executable file named promtool are skipped. */
    char dir2[] = "/tmp/promtext-fake2-XXXXXX", path[256], shadow[80];
    assert_non_null(mkdtemp(dir2));
    snprintf(shadow, sizeof(shadow), "%s/promtool", dir2);
    f = fopen(shadow, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\nexit 9\n", f);
    fclose(f);
    assert_int_equal(chmod(shadow, 0644), 0);

    snprintf(path, sizeof(path), "%s::%s:/usr/bin:/bin", dir2, dir);
    setenv("PATH", path, 1);
    assert_int_equal(prom_promtool_check("x 1\n", 4), 0);
    assert_int_equal(prom_promtool_check("bad 1\n", 6), 1);
    assert_int_equal(prom_promtool_check("", 0), 1);
    restore_path(old);

    unlink(shadow);
    rmdir(dir2);
    unlink(tool);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_realistic),          cmocka_unit_test(test_empty_and_blank),
        cmocka_unit_test(test_final_newline),      cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_comments_help_type), cmocka_unit_test(test_metric_names),
        cmocka_unit_test(test_label_names),        cmocka_unit_test(test_label_syntax),
        cmocka_unit_test(test_label_escapes),      cmocka_unit_test(test_values),
        cmocka_unit_test(test_timestamps),         cmocka_unit_test(test_contiguity),
        cmocka_unit_test(test_duplicate_series),   cmocka_unit_test(test_counter),
        cmocka_unit_test(test_histogram),          cmocka_unit_test(test_summary),
        cmocka_unit_test(test_family_resolution),  cmocka_unit_test(test_error_buffer),
        cmocka_unit_test(test_large_document),     cmocka_unit_test(test_promtool_absent),
        cmocka_unit_test(test_promtool_fake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

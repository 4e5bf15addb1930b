/*
 * promtext — a strict parser of the Prometheus text exposition format 0.0.4,
 * so tests can check `GET /metrics` with a real parser instead of matching
 * strings.
 *
 * Accepted (https://prometheus.io/docs/instrumenting/exposition_formats/):
 *   - lines end with '\n', the text too; empty and blank lines are ignored;
 *     blanks/tabs separate tokens, and leading/trailing ones are ignored;
 *   - `# HELP name text` (text escapes: \\ and \n only; valid UTF-8),
 *     `# TYPE name counter|gauge|histogram|summary|untyped`, other `#` lines
 *     are comments;
 *   - samples `name[{label="value",...[,]}] value [timestamp]`: metric names
 *     [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* not
 *     starting with "__", label values quoted with only \\, \" and \n escapes
 *     (valid UTF-8), no label name twice; values are decimal floats with an
 *     optional exponent, +Inf, -Inf or NaN (no hex, no "Inf", no overflow);
 *     the timestamp an int64.
 *
 * Rejected besides syntax: a second HELP or TYPE for a family; TYPE after
 * the family's first sample; a family's samples (and later HELP/TYPE) not
 * contiguous; the same series (name and label set, in any order) twice;
 * counters negative or NaN; histograms with samples other than x_bucket
 * (with an `le` that is a float, non-NaN), x_sum, x_count (without `le`),
 * buckets out of increasing `le` order, cumulative counts decreasing,
 * negative or NaN, a series without a +Inf bucket or x_count, or +Inf !=
 * x_count; summaries with samples other than x{quantile in [0, 1], in
 * increasing order}, x_sum, x_count (without `quantile`, count >= 0); HELP or
 * TYPE naming x_sum/x_count/x_bucket of a histogram or summary x, or a TYPE
 * histogram/summary x after a family x_sum/x_count/x_bucket was seen. Bytes
 * NUL anywhere are rejected.
 *
 * Families: a sample x_bucket belongs to x when x has TYPE histogram, x_sum
 * and x_count to x when x has TYPE histogram or summary; otherwise its family
 * is its own name. Every family met (by HELP, TYPE or a sample) is listed in
 * prom_doc_t.families in order of first appearance; one without TYPE is
 * "untyped".
 *
 * No global state; the functions are reentrant.
 */
#ifndef MERIDIAN_TEST_PROMTEXT_H
#define MERIDIAN_TEST_PROMTEXT_H

#include <stddef.h>

typedef struct prom_sample {
    char *name;   /* sample name as written (e.g. x_bucket) */
    char *family; /* family it belongs to (x for x_bucket/x_sum/x_count of histogram x) */
    size_t n_labels;
    char **label_names;  /* in the order written; NULL when n_labels == 0 */
    char **label_values; /* unescaped */
    double value;
} prom_sample_t;

typedef struct prom_family {
    char *name;
    char *type; /* counter | gauge | histogram | summary | untyped */
    char *help; /* unescaped, NULL when absent */
} prom_family_t;

typedef struct prom_doc {
    prom_sample_t *samples;
    size_t n_samples;
    prom_family_t *families;
    size_t n_families;
} prom_doc_t;

/* Strict parse of text[0..len). 0 on success with *out filled (free with
 * prom_free); -1 with err set to "line 17: <why>" on the first violation
 * (err may be NULL) and *out left empty. An empty text is a valid, empty
 * document. */
int prom_parse(const char *text, size_t len, prom_doc_t *out, char *err, size_t errlen);

/* Frees what prom_parse filled and zeroes *d. NULL-safe. */
void prom_free(prom_doc_t *d);

/* Sum of the values of samples named `name` whose labels include every given
 * pair (labels: NULL-terminated name, value, name, value ...; NULL = no
 * filter). NAN when no sample matches. */
double prom_sum(const prom_doc_t *d, const char *name, const char *const *labels);

/* Number of samples named `name` (any labels). */
size_t prom_count(const prom_doc_t *d, const char *name);

/* Runs `promtool check metrics` with text on its stdin when promtool is on
 * PATH: 0 ok, 1 problems (promtool's output goes to stderr), 77 when
 * promtool is not installed (the ctest/automake "skipped" code). */
int prom_promtool_check(const char *text, size_t len);

#endif

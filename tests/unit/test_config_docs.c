/*
 * docs/configuration.md against the settings table (catalogue.h), in the
 * spirit of curl's doc check: every scalar key the loader reads from the
 * table has a row in the "Top level" section of the docs, every scalar key
 * documented there is in the table, and each documented row states the
 * table's type, default, bounds and a version ("Since").
 *
 * A documented row is a markdown table row under "## Top level" whose key
 * cell is `path` or [`path`](#anchor) and whose Type cell is not "object"
 * or "array" (those have loaders of their own).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meridian/catalogue.h"

#ifndef MERIDIAN_SOURCE_DIR
#define MERIDIAN_SOURCE_DIR "."
#endif

#define DOC MERIDIAN_SOURCE_DIR "/docs/configuration.md"
#define MAX_CELLS 8
#define CELL_MAX 512

typedef struct table {
    int key, type, def, bounds, since; /* column indexes, -1 when absent */
} table_t;

typedef struct doc_check {
    size_t n_rows;   /* settings rows */
    int seen[64];    /* documented rows per setting */
    size_t scalars;  /* documented scalar rows */
    size_t problems; /* mismatches reported */
} doc_check_t;

static char *read_doc(void)
{
    FILE *f = fopen(DOC, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Split one "| a | b \| c |" line into trimmed cells; returns their count. */
static int split_cells(const char *line, size_t len, char cells[MAX_CELLS][CELL_MAX])
{
    int n = 0;
    size_t i = 1, o = 0;

    while (i < len && n < MAX_CELLS) {
        if (line[i] == '|' && line[i - 1] != '\\') {
            while (o > 0 && cells[n][o - 1] == ' ')
                o--;
            cells[n++][o] = '\0';
            o = 0;
        } else if (o + 1 < CELL_MAX && !(o == 0 && line[i] == ' ')) {
            cells[n][o++] = line[i];
        }
        i++;
    }
    return n;
}

static int column(char cells[MAX_CELLS][CELL_MAX], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(cells[i], name))
            return i;
    return -1;
}

/* The path in "`timeouts.connect_ms`" or "[`listen`](#listen)". */
static bool key_path(const char *cell, char *out, size_t n)
{
    const char *a = strchr(cell, '`'), *b = a ? strchr(a + 1, '`') : NULL;

    if (!a || !b || (size_t)(b - a - 1) >= n || (cell[0] != '`' && cell[0] != '['))
        return false;
    memcpy(out, a + 1, (size_t)(b - a - 1));
    out[b - a - 1] = '\0';
    return true;
}

static const char *type_word(const mr_setting_t *s)
{
    switch (s->type) {
    case MR_SETTING_UINT:
        return "integer";
    case MR_SETTING_NUMBER:
        return "number";
    case MR_SETTING_BOOL:
        return "boolean";
    default:
        return "string";
    }
}

static void problem(doc_check_t *c, const char *path, const char *what, const char *cell,
                    const char *want)
{
    print_error("docs/configuration.md: %s: %s: the docs say \"%s\", the settings table says %s\n",
                path, what, cell, want);
    c->problems++;
}

/* The default as the docs write it: `5000`, `"off"`, none, required. */
static void expected_default(const mr_setting_t *s, char *buf, size_t n)
{
    char v[128];

    mr_setting_format(s, NULL, v, sizeof(v));
    if (s->flags & MR_SETTING_REQUIRED)
        snprintf(buf, n, "required");
    else if ((s->type == MR_SETTING_STRING || s->type == MR_SETTING_POLICY) && !s->def_str)
        snprintf(buf, n, "none");
    else if (s->type == MR_SETTING_STRING || s->type == MR_SETTING_LISTEN ||
             s->type == MR_SETTING_ENUM)
        snprintf(buf, n, "`\"%s\"`", v);
    else
        snprintf(buf, n, "`%s`", v);
}

static bool is_version(const char *s)
{
    int a, b, c, end = 0;
    return sscanf(s, "%d.%d.%d%n", &a, &b, &c, &end) == 3 && s[end] == '\0';
}

static void check_row(doc_check_t *c, const table_t *t, char cells[MAX_CELLS][CELL_MAX], int nc)
{
    size_t n;
    const mr_setting_t *rows = mr_settings(&n);
    char path[128], want[160], row_path[128];
    const mr_setting_t *s = NULL;

    if (t->key < 0 || t->key >= nc || !key_path(cells[t->key], path, sizeof(path)))
        return;
    if (t->type < 0 || t->type >= nc || !strncmp(cells[t->type], "object", 6) ||
        !strncmp(cells[t->type], "array", 5))
        return;
    c->scalars++;
    for (size_t i = 0; i < n && !s; i++)
        if (!strcmp(mr_setting_path(&rows[i], row_path, sizeof(row_path)), path)) {
            s = &rows[i];
            c->seen[i]++;
        }
    if (!s) {
        problem(c, path, "key", path, "there is no such row");
        return;
    }
    if (strncmp(cells[t->type], type_word(s), strlen(type_word(s))))
        problem(c, path, "type", cells[t->type], type_word(s));
    expected_default(s, want, sizeof(want));
    if (t->def < 0 || t->def >= nc || !strstr(cells[t->def], want))
        problem(c, path, "default", t->def >= 0 ? cells[t->def] : "", want);
    if (s->type == MR_SETTING_UINT || s->type == MR_SETTING_NUMBER) {
        snprintf(want, sizeof(want), s->type == MR_SETTING_UINT ? "%.0f–%.0f" : "%g–%g", s->min,
                 s->max);
        if (t->bounds < 0 || t->bounds >= nc || !strstr(cells[t->bounds], want))
            problem(c, path, "bounds", t->bounds >= 0 ? cells[t->bounds] : "", want);
    }
    if (t->since < 0 || t->since >= nc || !is_version(cells[t->since]))
        problem(c, path, "Since", t->since >= 0 ? cells[t->since] : "",
                "it wants a version such as 0.1.0");
}

/* Walk the tables of [p, end): a header line, a "| ---" line, then rows. */
static void check_section(doc_check_t *c, const char *p, const char *end)
{
    char cells[MAX_CELLS][CELL_MAX];
    table_t t = {-1, -1, -1, -1, -1};
    bool in_table = false;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int nc;

        if (p[0] != '|') {
            in_table = false;
        } else if (!strncmp(p, "| ---", 5)) {
            in_table = true;
        } else if (!in_table) {
            nc = split_cells(p, len, cells);
            t = (table_t){column(cells, nc, "Key"), column(cells, nc, "Type"),
                          column(cells, nc, "Default"), column(cells, nc, "Bounds"),
                          column(cells, nc, "Since")};
        } else {
            nc = split_cells(p, len, cells);
            check_row(c, &t, cells, nc);
        }
        p += len + (nl ? 1 : 0);
    }
}

static void test_docs_match_settings(void **state)
{
    char *doc = read_doc(), path[128];
    const char *start = strstr(doc, "\n## Top level\n"), *end;
    const mr_setting_t *rows;
    doc_check_t c = {0};

    (void)state;
    assert_non_null(start);
    end = strstr(start + 1, "\n## ");
    assert_non_null(end);
    rows = mr_settings(&c.n_rows);
    assert_true(c.n_rows > 0 && c.n_rows <= sizeof(c.seen) / sizeof(c.seen[0]));
    check_section(&c, start, end);
    for (size_t i = 0; i < c.n_rows; i++)
        if (c.seen[i] != 1) {
            print_error("docs/configuration.md: %s is documented %d times in \"Top level\" "
                        "(want exactly once)\n",
                        mr_setting_path(&rows[i], path, sizeof(path)), c.seen[i]);
            c.problems++;
        }
    assert_int_equal(c.scalars, c.n_rows);
    assert_int_equal(c.problems, 0);
    free(doc);
}

/* The table itself: sane bounds and defaults inside them. */
static void test_settings_table(void **state)
{
    size_t n;
    const mr_setting_t *rows = mr_settings(&n);
    char path[128], v[128];

    (void)state;
    for (size_t i = 0; i < n; i++) {
        const mr_setting_t *s = &rows[i];
        mr_setting_path(s, path, sizeof(path));
        if (s->type == MR_SETTING_UINT || s->type == MR_SETTING_NUMBER) {
            if (!(s->min <= s->def && s->def <= s->max && s->min >= 0)) {
                print_error("%s: default %g outside %g..%g\n", path, s->def, s->min, s->max);
                fail();
            }
            assert_true(s->type != MR_SETTING_UINT || s->size == 4 || s->size == 8);
            /* every bound fits the field */
            assert_true(s->type != MR_SETTING_UINT || s->size == 8 || s->max <= UINT32_MAX);
        }
        /* no key has two rows, and a section's rows are consecutive */
        for (size_t j = i + 1; j < n; j++) {
            char other[128];
            assert_string_not_equal(path, mr_setting_path(&rows[j], other, sizeof(other)));
            if (j > i + 1 && s->section && rows[j].section && !strcmp(s->section, rows[j].section))
                assert_non_null(rows[j - 1].section);
            if (j > i + 1 && s->section && rows[j].section && !strcmp(s->section, rows[j].section))
                assert_string_equal(rows[j - 1].section, s->section);
        }
        assert_non_null(mr_setting_format(s, NULL, v, sizeof(v)));
        assert_true(v[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docs_match_settings),
        cmocka_unit_test(test_settings_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

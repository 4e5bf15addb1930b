/*
 * router_explain — plans rendered as JSON and as text.
 */
#include "meridian/router_explain.h"

#include <string.h>

static const char *kind_name(mr_exclusion_kind_t k)
{
    switch (k) {
    case MR_EXCLUDED_POLICY:
        return "policy";
    case MR_EXCLUDED_DISABLED:
        return "disabled";
    case MR_EXCLUDED_FALLBACKS:
        return "allow_fallbacks";
    case MR_EXCLUDED_BUDGET:
        return "budget";
    case MR_EXCLUDED_CAP:
        return "attempt_cap";
    }
    return "unknown";
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *mr_plan_exclusions_json(const mr_plan_t *plan)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr && i < plan->n_excluded; i++) {
        const mr_exclusion_t *x = &plan->excluded[i];
        json_t *o = json_object();
        if (!o)
            break;
        json_object_set_new(o, "provider", json_string(x->provider->name));
        json_object_set_new(o, "model", json_string(x->model));
        json_object_set_new(o, "for_model",
                            str_or_null(x->group < plan->n_models ? plan->models[x->group] : NULL));
        json_object_set_new(o, "kind", json_string(kind_name(x->kind)));
        json_object_set_new(o, "rule", json_string(x->rule));
        json_object_set_new(o, "policy", str_or_null(x->policy));
        json_object_set_new(o, "reason", json_string(x->reason));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *policy_entry(const mr_policy_t *p, const char *layer)
{
    json_t *o = json_object();

    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "layer", json_string(layer));
    json_object_set_new(o, "sha256", json_string(mr_policy_hash(p)));
    return o;
}

static json_t *plan_json(const mr_plan_t *plan, mr_softstate_t *ss, uint64_t now_ms, int rc,
                         const mr_error_t *err)
{
    json_t *o = json_object(), *arr;

    if (!o)
        return NULL;
    arr = json_array();
    for (size_t i = 0; i < plan->n_models; i++)
        json_array_append_new(arr, json_string(plan->models[i]));
    json_object_set_new(o, "models", arr);
    json_object_set_new(o, "route", str_or_null(plan->route ? plan->route->name : NULL));
    json_object_set_new(o, "policy", json_string(plan->policy_label));
    arr = json_array();
    if (plan->key_policy)
        json_array_append_new(
            arr, policy_entry(plan->key_policy, plan->key_is_default ? "default" : "key"));
    if (plan->chosen_policy)
        json_array_append_new(
            arr, policy_entry(plan->chosen_policy, plan->chosen_by_header ? "header" : "default"));
    json_object_set_new(o, "policies", arr);
    json_object_set_new(o, "request_policy", json_boolean(plan->request_layer));
    json_object_set_new(o, "strategy", json_string(mr_strategy_name(plan->strategy)));
    json_object_set_new(o, "strategy_from", json_string(plan->strategy_from));
    json_object_set_new(o, "fallback_diversity", json_string(mr_diversity_name(plan->diversity)));
    json_object_set_new(o, "diversity_from", json_string(plan->diversity_from));
    json_object_set_new(o, "max_attempts", json_integer(rc == 0 ? plan->max_attempts : 0));
    arr = json_array();
    for (size_t i = 0; arr && i < plan->n_candidates; i++) {
        const mr_candidate_t *c = &plan->candidates[i];
        const mr_provider_t *p = c->provider;
        json_t *e = json_object();
        double ttfb;
        json_object_set_new(e, "rank", json_integer((json_int_t)i + 1));
        json_object_set_new(e, "provider", json_string(p->name));
        json_object_set_new(e, "model", json_string(c->model));
        json_object_set_new(e, "for_model", json_string(plan->models[c->group]));
        json_object_set_new(e, "vendor", json_string(p->vendor));
        json_object_set_new(e, "region", json_string(p->region));
        json_object_set_new(e, "jurisdiction", json_string(p->jurisdiction));
        json_object_set_new(e, "creator", json_string(c->target ? c->target->creator : p->vendor));
        json_object_set_new(e, "open_weights", json_boolean(c->target && c->target->open_weights));
        json_object_set_new(e, "demoted", json_boolean(c->demoted));
        if (i == 0 && plan->pinned)
            json_object_set_new(e, "pinned", json_true());
        if (c->target && mr_softstate_ttfb(ss, c->target->id, now_ms, &ttfb))
            json_object_set_new(e, "ttfb_ms", json_real(ttfb));
        if (c->target && c->target->has_input_price)
            json_object_set_new(e, "input_per_mtok", json_real(c->target->input_per_mtok));
        if (c->target && c->target->has_output_price)
            json_object_set_new(e, "output_per_mtok", json_real(c->target->output_per_mtok));
        json_array_append_new(arr, e);
    }
    json_object_set_new(o, "candidates", arr);
    json_object_set_new(o, "excluded", mr_plan_exclusions_json(plan));
    json_object_set_new(o, "excluded_total", json_integer((json_int_t)plan->n_excluded_total));
    json_object_set_new(o, "status", json_integer(rc == 0 ? 200 : err->status));
    if (rc != 0) {
        json_t *e = json_object();
        json_object_set_new(e, "code", str_or_null(err->code));
        json_object_set_new(e, "message", json_string(err->message));
        json_object_set_new(o, "error", e);
    }
    return o;
}

int mr_router_explain(const mr_config_t *cfg, const mr_policy_stack_t *stack,
                      const char *const *models, size_t n_models, mr_softstate_t *ss,
                      uint64_t now_ms, json_t **out, mr_error_t *err)
{
    mr_plan_t plan = {0};
    mr_error_t e;
    int rc = mr_router_plan_preview(cfg, stack, models, n_models, ss, now_ms, &plan, &e);

    *out = NULL;
    if (rc < 0 && e.status != 403 && e.status != 503) {
        mr_plan_release(&plan);
        *err = e;
        return -1;
    }
    *out = plan_json(&plan, ss, now_ms, rc, &e);
    mr_plan_release(&plan);
    if (!*out) {
        mr_error_set(err, 500, NULL, NULL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

void mr_router_explain_print(const json_t *ex, FILE *out)
{
    const json_t *arr, *e, *models = json_object_get(ex, "models");
    size_t i, n_excluded;
    int w = 0;

    fprintf(out, "model");
    json_array_foreach(models, i, e)
    {
        fprintf(out, "%s %s", i ? "," : "", json_string_value(e));
    }
    if (json_is_string(json_object_get(ex, "route")))
        fprintf(out, "  (route %s)", jstr(ex, "route"));
    fputc('\n', out);

    /* "policy eu-only (key, sha256:...) + diverse (header, ...) + request" */
    arr = json_object_get(ex, "policies");
    fprintf(out, "policy");
    json_array_foreach(arr, i, e)
    {
        fprintf(out, "%s %s (%s, sha256:%.12s)", i ? " +" : "", jstr(e, "name"), jstr(e, "layer"),
                jstr(e, "sha256"));
    }
    if (json_is_true(json_object_get(ex, "request_policy")))
        fprintf(out, "%s request (provider object)", json_array_size(arr) ? " +" : "");
    if (!*jstr(ex, "policy"))
        fprintf(out, " (none)");
    fputc('\n', out);
    fprintf(out, "strategy %s (%s), fallback_diversity %s (%s), max_attempts %lld\n",
            jstr(ex, "strategy"), jstr(ex, "strategy_from"), jstr(ex, "fallback_diversity"),
            jstr(ex, "diversity_from"),
            (long long)json_integer_value(json_object_get(ex, "max_attempts")));

    arr = json_object_get(ex, "candidates");
    json_array_foreach(arr, i, e)
    {
        int l = (int)(strlen(jstr(e, "provider")) + 1 + strlen(jstr(e, "model")));
        if (l > w)
            w = l;
    }
    fprintf(out, "candidates:%s\n", json_array_size(arr) ? "" : " (none)");
    json_array_foreach(arr, i, e)
    {
        int l = (int)(strlen(jstr(e, "provider")) + 1 + strlen(jstr(e, "model")));
        fprintf(out, "  %zu. %s/%s%*s  vendor=%s region=%s jurisdiction=%s creator=%s", i + 1,
                jstr(e, "provider"), jstr(e, "model"), w - l, "", jstr(e, "vendor"),
                *jstr(e, "region") ? jstr(e, "region") : "-",
                *jstr(e, "jurisdiction") ? jstr(e, "jurisdiction") : "-", jstr(e, "creator"));
        if (json_array_size(models) > 1)
            fprintf(out, " for=%s", jstr(e, "for_model"));
        if (json_is_number(json_object_get(e, "ttfb_ms")))
            fprintf(out, " ttfb=%.0fms", json_number_value(json_object_get(e, "ttfb_ms")));
        if (json_is_true(json_object_get(e, "demoted")))
            fprintf(out, " [over max_vendor_share: moved behind]");
        if (json_is_true(json_object_get(e, "pinned")))
            fprintf(out, " [session pinned here: cache affinity]");
        fputc('\n', out);
    }

    arr = json_object_get(ex, "excluded");
    n_excluded = (size_t)json_integer_value(json_object_get(ex, "excluded_total"));
    if (json_array_size(arr))
        fprintf(out, "excluded:\n");
    json_array_foreach(arr, i, e)
    {
        fprintf(out, "  - %s/%s: %s%s\n", jstr(e, "provider"), jstr(e, "model"),
                strcmp(jstr(e, "kind"), "disabled") ? "" : "disabled: ", jstr(e, "reason"));
    }
    if (n_excluded > json_array_size(arr))
        fprintf(out, "  ... and %zu more\n", n_excluded - json_array_size(arr));

    if (json_integer_value(json_object_get(ex, "status")) == 200) {
        size_t n = json_array_size(json_object_get(ex, "candidates"));
        fprintf(out, "result: 200, %zu candidate%s\n", n, n == 1 ? "" : "s");
    } else {
        const json_t *er = json_object_get(ex, "error");
        fprintf(out, "result: %lld %s: %s\n",
                (long long)json_integer_value(json_object_get(ex, "status")), jstr(er, "code"),
                jstr(er, "message"));
    }
}

int mr_router_explain_text(const mr_config_t *cfg, const char *model, const char *policy, FILE *out,
                           mr_error_t *err)
{
    mr_policy_stack_t st;
    json_t *ex = NULL;
    const char *models[1] = {model};
    int rc;

    if (mr_policy_stack_init(&st, cfg, NULL, policy, NULL, err) < 0)
        return -1;
    if (mr_router_explain(cfg, &st, models, 1, NULL, 0, &ex, err) < 0)
        return -1;
    mr_router_explain_print(ex, out);
    rc = json_integer_value(json_object_get(ex, "status")) == 200 ? 0 : 1;
    json_decref(ex);
    return rc;
}

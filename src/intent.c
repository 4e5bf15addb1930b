#include "meridian/intent.h"

#include "meridian/adapter.h"
#include "meridian/inbound.h"

#include <string.h>

static uint64_t now_of(const mr_request_t *r)
{
    return uv_now(r->env->loop);
}

/* What the request asks of its targets: the capabilities it needs and,
 * with provider.require_parameters, a parameter each dialect would not
 * carry. Read from its conversation model, which is parsed here only when
 * some target may lack something and the worker's budget took its charge
 * (intake.h; then reused by the attempts); a body that is no conversation
 * is left to the attempts to refuse. */
void mr_intent_needs(mr_request_t *r, mr_request_policy_t *rp)
{
    const mr_config_t *cfg = r->gen->cfg;
    mr_error_t e;

    /* !conv_charge: the worker's memory budget could not take the model (intake.h) */
    if (!mr_inbound_is_conversation(r->endpoint) ||
        (cfg->common_capabilities == MR_CAP_ALL && !rp->require_parameters) || !r->conv_charge ||
        mr_adapter_conv_parse(&r->conv, r->json, &e) < 0)
        return;
    rp->needs = mr_conv_needs(r->conv.req);
    for (int k = 0; rp->require_parameters && k < MR_PROVIDER_KIND_COUNT; k++) {
        const mr_adapter_t *ad = r->inbound->adapter(r->endpoint, (mr_provider_kind_t)k);
        rp->unsupported[k] = ad && ad->unsupported ? ad->unsupported(r->conv.req) : NULL;
    }
}

int mr_intent_session_pin(const mr_request_t *r, const char *model, const char *name, size_t n,
                          uint64_t *key, uint32_t *target_id, uint64_t *expires_ms)
{
    const char *scope[] = {r->key ? r->key->name : "", model};

    *key = mr_affinity_key(scope, 2, name, n);
    return mr_affinity_get(r->gen->snap->affinity, *key, now_of(r), target_id, expires_ms);
}

/* How long a conversation stays pinned: the key's policy's session_ttl_s,
 * else the chosen (header or default) policy's, else the default. */
static uint32_t session_ttl_s(const mr_policy_stack_t *st)
{
    if (st->key && st->key->session_ttl_set)
        return st->key->session_ttl_s;
    if (st->chosen && st->chosen->session_ttl_set)
        return st->chosen->session_ttl_s;
    return MR_SESSION_TTL_S;
}

/* Cache affinity: the conversation the request belongs to — named by the
 * client dialect's member (chat: prompt_cache_key, else user; messages:
 * metadata.user_id), else the x-meridian-session header — and the target
 * that conversation is pinned to. */
void mr_intent_session(mr_request_t *r, mr_policy_stack_t *st)
{
    const json_t *v = r->inbound->session(r->json);
    const char *name;
    size_t n;
    uint64_t expires;

    if (json_string_length(v)) {
        name = json_string_value(v);
        n = json_string_length(v);
    } else if ((name =
                    MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-meridian-session")) &&
               *name) {
        n = strlen(name);
    } else {
        return;
    }
    r->session_ttl_ms = session_ttl_s(st) * 1000u;
    st->request.has_pin = mr_intent_session_pin(r, r->model, name, n, &r->session_key,
                                                &st->request.pin, &expires) == 1;
}

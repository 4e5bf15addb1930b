/*
 * policy — which targets a request may use, and in which order preference.
 *
 * A request is routed under a *policy stack* of up to three layers:
 *
 *   key      the policy bound to the caller's gateway key (keys.NAME.policy);
 *            with policy_header "narrow_only" (the default) and no key
 *            policy, default_policy when a header policy is given
 *   chosen   the policy named by the x-meridian-policy header (unless
 *            policy_header is "ignore"), else default_policy when the key
 *            binds none
 *   request  the OpenRouter-compatible `provider` object of the body
 *
 * Every filter of every layer must pass (intersection), so a request-level
 * choice can only narrow a key-bound policy, never widen it. The ordering
 * strategy and fallback_diversity come from the most specific layer that
 * sets them (request sort > chosen > key); every layer's max_vendor_share
 * applies. docs/routing.md is the user-facing description.
 *
 * Everything here is a pure function over the immutable config and caller-
 * owned values: no heap, no global state, callable from any thread. The
 * stack borrows the policies from the config and must not outlive it.
 */
#ifndef MERIDIAN_POLICY_H
#define MERIDIAN_POLICY_H

#include "meridian/catalogue.h"
#include "meridian/error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define MR_REQ_MAX_NAMES 32         /* entries of provider.order / only / ignore */
#define MR_REQ_NAME_MAX MR_NAME_MAX /* bytes of one provider name */
#define MR_POLICY_LABEL_MAX 160

typedef enum {
    MR_SORT_NONE = 0,
    MR_SORT_PRICE,      /* -> strategy cheapest */
    MR_SORT_LATENCY,    /* -> strategy least_latency */
    MR_SORT_THROUGHPUT, /* -> strategy least_latency (no throughput data is kept) */
} mr_sort_t;

typedef struct mr_name_list {
    size_t n;
    char names[MR_REQ_MAX_NAMES][MR_REQ_NAME_MAX + 1];
} mr_name_list_t;

/*
 * The request body's `provider` object, copied (it does not borrow the JSON).
 * Provider names match config provider names case-insensitively.
 */
typedef struct mr_request_policy {
    bool present;         /* a non-null provider object was given */
    mr_name_list_t order; /* these providers first, in this order */
    mr_name_list_t only;  /* allow list (n == 0: no restriction) */
    mr_name_list_t ignore;
    bool allow_fallbacks;      /* default true */
    bool deny_data_collection; /* data_collection "deny" */
    bool zdr;                  /* only zero-data-retention providers */
    mr_sort_t sort;
    bool has_max_prompt, has_max_completion;
    double max_prompt, max_completion; /* USD per million tokens */
    bool require_parameters; /* provider.require_parameters: skip targets that would drop one */
    /* What the request itself asks of a target, set by the caller from the
     * body after mr_policy_stack_init (present or not): capabilities it
     * needs (MR_CAP_*), and per provider kind a parameter that kind would
     * not carry (NULL: none; only with require_parameters). Borrowed. */
    uint32_t needs;
    const char *unsupported[MR_PROVIDER_KIND_COUNT];
    /* Cache affinity (affinity.h): the target id the request's session is
     * pinned to; the router tries it first when it is a candidate. */
    bool has_pin;
    uint32_t pin;
} mr_request_policy_t;

typedef struct mr_policy_stack {
    const mr_policy_t *key;    /* bound to the gateway key (or default_policy, below), or NULL */
    const mr_policy_t *chosen; /* header policy, else default_policy when no key policy */
    bool key_is_default;       /* `key` is default_policy, narrowed by the header's */
    bool chosen_by_header;
    mr_request_policy_t request;
    /* "eu-only", "eu-only+diverse", "eu-only+request", "" (no policy at all):
     * the value of the x-meridian-policy response header. */
    char label[MR_POLICY_LABEL_MAX];
} mr_policy_stack_t;

/*
 * Parse the body's `provider` member (NULL or JSON null: absent -> out->present
 * false). Accepted: order, only, ignore (arrays of provider names), allow_fallbacks
 * (bool), data_collection ("allow"|"deny"), zdr (bool), sort ("price"|"latency"|
 * "throughput"), max_price ({"prompt": N, "completion": N}, USD per million
 * tokens), require_parameters (bool). Anything else, or a bad shape, is
 * 400 invalid_request_error with param "provider" and a message naming the member.
 * provider_obj is only read (non-const because jansson's iteration API is).
 */
int mr_policy_from_request(json_t *provider_obj, mr_request_policy_t *out, mr_error_t *err);

/*
 * Build the stack for one request:
 *   key            the authenticated gateway key (mr_auth_check), or NULL
 *   header_policy  value of x-meridian-policy, or NULL / "" when absent;
 *                  what it may do is cfg->policy_header's
 *   provider_obj   the body's `provider` member, or NULL
 * Errors: 400 code "policy_not_found" (param NULL) for an unknown header policy
 * (not read at all under "ignore");
 * the errors of mr_policy_from_request. The stack is a plain value (~7 KiB).
 */
int mr_policy_stack_init(mr_policy_stack_t *st, const mr_config_t *cfg, const mr_key_t *key,
                         const char *header_policy, json_t *provider_obj, mr_error_t *err);

/* true when no layer filters or orders anything (routing as without policies). */
bool mr_policy_stack_empty(const mr_policy_stack_t *st);

/*
 * The static filters of one policy for one target: allow/deny lists,
 * open_weights_only, data_collection, zdr_only, max_price. Returns 0 when the
 * target passes, -1 when it is excluded; then `reason` (if non-NULL) gets a
 * human-readable reason ending in "(policy NAME)" or "(policy NAME: rule)",
 * and `rule` (if non-NULL) the rule's name: "allow.region", "deny.vendor",
 * "open_weights_only", "data_collection", "zdr_only", "max_price".
 */
int mr_policy_check_target(const mr_policy_t *p, const mr_target_t *t, char *reason, size_t n,
                           char *rule, size_t rule_n);

/* The same for the request layer; rules "provider.only", "provider.ignore",
 * "provider.order" (allow_fallbacks false), "provider.data_collection",
 * "provider.zdr", "provider.max_price"; reasons end in "(request ...)". */
int mr_request_policy_check_target(const mr_request_policy_t *rp, const mr_target_t *t,
                                   char *reason, size_t n, char *rule, size_t rule_n);

/* Every layer of the stack, key first. *policy_out names the excluding layer
 * (a policy name, or "request"). */
int mr_policy_stack_check_target(const mr_policy_stack_t *st, const mr_target_t *t, char *reason,
                                 size_t n, char *rule, size_t rule_n, const char **policy_out);

/* Does a layer have an allow/deny rule on an attribute only a configured
 * target knows (creator, model, any tag: anything but provider, kind,
 * vendor, region, jurisdiction)? Then the first such rule ("allow.creator")
 * goes to `rule` and its policy's name to *policy_out. */
bool mr_policy_stack_needs_target(const mr_policy_stack_t *st, char *rule, size_t n,
                                  const char **policy_out);

/* Effective strategy / diversity and the layer they come from ("request",
 * a policy name, or "default"). */
mr_strategy_t mr_policy_stack_strategy(const mr_policy_stack_t *st, const char **from);
mr_diversity_t mr_policy_stack_diversity(const mr_policy_stack_t *st, const char **from);

/*
 * Canonical JSON of a policy's effective configuration (sorted keys, sorted
 * de-duplicated list values, defaults filled in, name excluded); new
 * reference, NULL on allocation failure. mr_policy_hash is the hex SHA-256 of
 * json_dumps(JSON_COMPACT | JSON_SORT_KEYS) of it, computed once at load.
 */
json_t *mr_policy_to_json(const mr_policy_t *p);
const char *mr_policy_hash(const mr_policy_t *p);

#endif

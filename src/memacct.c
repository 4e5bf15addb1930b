#include "meridian/memacct.h"

void mr_memacct_init(mr_memacct_t *a, size_t limit)
{
    a->limit = limit;
    a->used = a->peak = 0;
    a->refused = 0;
}

size_t mr_memacct_take_peak(mr_memacct_t *a)
{
    size_t p = a->peak;
    a->peak = a->used;
    return p;
}

bool mr_mem_fits(const mr_memhold_t *h, size_t n)
{
    const mr_memacct_t *a = h->acct;
    return !a || !a->limit || (a->used <= a->limit && n <= a->limit - a->used);
}

void mr_mem_force(mr_memhold_t *h, size_t n)
{
    mr_memacct_t *a = h->acct;

    if (!a)
        return;
    a->used += n;
    h->held += n;
    if (a->used > a->peak)
        a->peak = a->used;
}

int mr_mem_charge(mr_memhold_t *h, size_t n)
{
    if (!mr_mem_fits(h, n)) {
        h->acct->refused++;
        return -1;
    }
    mr_mem_force(h, n);
    return 0;
}

void mr_mem_release(mr_memhold_t *h, size_t n)
{
    if (!h->acct)
        return;
    if (n > h->held)
        n = h->held;
    h->held -= n;
    h->acct->used -= n;
}

void mr_mem_release_all(mr_memhold_t *h)
{
    mr_mem_release(h, h->held);
}

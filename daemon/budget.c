/* budget.c — the daemon-wide memory budget (limits.memory). */
#include "gsd.h"

#include <unistd.h>

uint64_t budget_used;
uint64_t overloaded_answers;
static bool over; /* as last checked: logged when it changes */

uint64_t budget_default(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    uint64_t share = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 4 : 0;
    return share > BUDGET_MIN ? share : BUDGET_MIN;
}

bool budget_check(void)
{
    bool now = budget_over();
    if (now != over)
        log_msg(
            now ? LOG_WARN : LOG_INFO,
            now ? "memory budget exceeded: %llu bytes held for clients, over the limit of %llu; "
                  "answering overloaded"
                : "memory back under the budget: %llu bytes held for clients, the limit %llu",
            (unsigned long long)budget_used, (unsigned long long)limits.memory);
    over = now;
    return now;
}

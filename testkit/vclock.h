/* vclock.h — the harness's virtual monotonic clock (vclock.c). */
#ifndef GSD_TESTKIT_VCLOCK_H
#define GSD_TESTKIT_VCLOCK_H

#include <stdint.h>
#include <time.h>

/* Makes the monotonic clocks virtual from now on (idempotent): they stand
 * still until vclock_set_ns moves them. */
void vclock_start(void);
/* The virtual reading, in nanoseconds. */
int64_t vclock_ns(void);
/* Moves the virtual clock to ns; never back. */
void vclock_set_ns(int64_t ns);
/* The real clock_gettime, whatever the clock. */
int vclock_real(clockid_t id, struct timespec *ts);

#endif

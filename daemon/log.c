/* log.c — one line per event on stderr, with a syslog level prefix under
 * systemd (it reads "<N>") and a readable level elsewhere. */
#include "gsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int log_level = LOG_INFO;

void log_vmsg(int level, const char *fmt, va_list ap)
{
    static const char *const names[8] = {"emerg",   "alert",  "crit", "error",
                                         "warning", "notice", "info", "debug"};
    if (level > log_level)
        return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    if (getenv("JOURNAL_STREAM")) {
        fprintf(stderr, "<%d>%s\n", level, line);
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld gsd %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, names[level & 7], line);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

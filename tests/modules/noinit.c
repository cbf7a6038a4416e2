/*
 * noinit — a module without the one required callback, init: the daemon
 * must refuse it (load and start answer "module").
 */
#include <gsd/module.h>

GS_MODULE(.name = "noinit", .vsn = 1);

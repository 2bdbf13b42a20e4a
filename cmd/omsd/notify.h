/* notify.h — omsd under a service manager: the sd_notify protocol
 * (READY=1, RELOADING=1, STOPPING=1 to $NOTIFY_SOCKET) and the reload that
 * SIGHUP asks for (log level, TLS certificate and key). */
#ifndef OMSD_NOTIFY_H
#define OMSD_NOTIFY_H

#include <signal.h>

#include "omsd.h"

/* Set by the SIGHUP handler; the service thread calls omsd_reload. */
extern volatile sig_atomic_t omsd_reload_requested;

/* Send one sd_notify datagram ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET
 * (a path, or "@name" for the abstract namespace). Does nothing when the
 * variable is unset. Returns 0, or -1 when the socket is unusable (the
 * service manager then reports the failure; omsd goes on). */
int omsd_notify(const char *state);

/* Remember the configuration file (NULL: $OMS_CONFIG or none) and install
 * the SIGHUP handler, which only sets omsd_reload_requested. */
void omsd_reload_setup(const char *config_path);

/* On the service thread: load the configuration again (file, environment),
 * apply log.level, and re-read the TLS certificate and key from their paths
 * so new connections get the new ones (open ones keep theirs). Anything
 * invalid is logged and the running settings stay. Other keys need a
 * restart. Tells the service manager RELOADING=1, then READY=1. */
void omsd_reload(omsd *d);
/* On another service thread after omsd_reload re-read the TLS files: the
 * same for its own context. */
void omsd_reload_tls(omsd_worker *w);

#endif

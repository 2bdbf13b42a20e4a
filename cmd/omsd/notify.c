/* notify.c — sd_notify by hand (one datagram, no libsystemd) and the SIGHUP
 * reload; see notify.h. */
#include "notify.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t omsd_reload_requested;

static const char *reload_config_path;

int omsd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    close(fd);
    return n == (ssize_t)strlen(state) ? 0 : -1;
}

static void on_sighup(int sig)
{
    (void)sig;
    omsd_reload_requested = 1;
}

void omsd_reload_setup(const char *config_path)
{
    reload_config_path = config_path;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sighup;
    sigaction(SIGHUP, &sa, NULL);
}

/* The certificate chain and key parse and belong together: lws would
 * otherwise swap in a broken pair without telling. On success, subject and
 * expiry of the leaf go into the out buffers. */
static int check_tls_files(const char *cert, const char *key, char *subject, size_t slen,
                           char *not_after, size_t nlen, char *errbuf, size_t errlen)
{
    int rc = -1;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    FILE *f = fopen(cert, "r");
    if (!f) {
        oms_errf(errbuf, errlen, "cannot read server.tls_cert '%s': %s", cert, strerror(errno));
        return -1;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x) {
        oms_errf(errbuf, errlen, "server.tls_cert '%s' holds no PEM certificate", cert);
        goto out;
    }
    if (!(f = fopen(key, "r"))) {
        oms_errf(errbuf, errlen, "cannot read server.tls_key '%s': %s", key, strerror(errno));
        goto out;
    }
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k) {
        oms_errf(errbuf, errlen, "server.tls_key '%s' holds no PEM private key", key);
        goto out;
    }
    if (X509_check_private_key(x, k) != 1) {
        oms_errf(errbuf, errlen, "server.tls_key '%s' does not match server.tls_cert '%s'", key,
                 cert);
        goto out;
    }
    X509_NAME_oneline(X509_get_subject_name(x), subject, (int)slen);
    BIO *b = BIO_new(BIO_s_mem());
    if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
        int n = BIO_read(b, not_after, (int)nlen - 1);
        not_after[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    rc = 0;
out:
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

static void reload_tls(omsd *d, const oms_config *next)
{
    const char *cert = d->cfg.server.tls_cert, *key = d->cfg.server.tls_key;
    if (!*cert) {
        if (*next->server.tls_cert)
            oms_log(d->log, OMS_LOG_WARN, "reload: TLS was off at start; restart omsd to turn it on");
        return;
    }
    if (strcmp(cert, next->server.tls_cert) != 0 || strcmp(key, next->server.tls_key) != 0)
        oms_log(d->log, OMS_LOG_WARN,
                "reload: server.tls_cert/tls_key paths changed; restart omsd to use new paths "
                "(re-reading the files at the current ones)",
                OMS_LS("cert", cert), OMS_LS("key", key));
    char subject[256] = "", not_after[64] = "", err[512];
    if (check_tls_files(cert, key, subject, sizeof subject, not_after, sizeof not_after, err,
                        sizeof err) != 0) {
        oms_log(d->log, OMS_LOG_ERROR, "reload: keeping the current TLS certificate",
                OMS_LS("error", err));
        return;
    }
    /* every service thread re-reads them into its own context
     * (omsd_reload_tls), this one first */
    omsd_worker *w = omsd_self;
    if (w && lws_tls_cert_updated(w->ctx, cert, key, NULL, 0, NULL, 0) != 0) {
        oms_log(d->log, OMS_LOG_ERROR, "reload: libwebsockets refused the TLS certificate",
                OMS_LS("cert", cert));
        return;
    }
    int gen = atomic_fetch_add(&d->reload_gen, 1) + 1;
    if (w)
        w->reload_gen = gen;
    /* the other service threads take it at their next turn: wake them now
     * (an idle one would otherwise accept its next client, woken by it,
     * with the old certificate; accept_some also checks) */
    for (int i = 0; i < d->nworkers; i++)
        if (&d->workers[i] != w && d->workers[i].ctx)
            lws_cancel_service(d->workers[i].ctx);
    oms_log(d->log, OMS_LOG_INFO, "reload: TLS certificate re-read", OMS_LS("cert", cert),
            OMS_LS("subject", subject), OMS_LS("notAfter", not_after));
}

void omsd_reload_tls(omsd_worker *w)
{
    omsd *d = w->d;
    const char *cert = d->cfg.server.tls_cert, *key = d->cfg.server.tls_key;
    if (*cert && lws_tls_cert_updated(w->ctx, cert, key, NULL, 0, NULL, 0) != 0)
        oms_log(d->log, OMS_LOG_ERROR, "reload: libwebsockets refused the TLS certificate",
                OMS_LS("cert", cert), OMS_LI("thread", w->idx));
}

void omsd_reload(omsd *d)
{
    omsd_reload_requested = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    omsd_notify(msg);

    oms_config next;
    char err[512];
    const char *path = reload_config_path ? reload_config_path : getenv("OMS_CONFIG");
    int rc = oms_config_defaults(&next);
    if (rc == OMS_OK && path && *path)
        rc = oms_config_load_file(&next, path, err, sizeof err);
    if (rc == OMS_OK)
        rc = oms_config_apply_env(&next, getenv, err, sizeof err);
    if (rc == OMS_OK)
        rc = oms_config_validate(&next, err, sizeof err);
    if (rc != OMS_OK) {
        oms_log(d->log, OMS_LOG_ERROR, "reload: configuration invalid, nothing changed",
                OMS_LS("error", err));
    } else {
        oms_log_level level;
        if (oms_log_level_parse(next.log.level, &level) == 0) {
            oms_log_level was = oms_logger_level(d->log);
            /* logged at a level that shows whichever way it goes */
            oms_log_level show = level < was ? level : was;
            oms_logger_set_level(d->log, show);
            oms_log(d->log, show, "reload: log level", OMS_LS("from", oms_log_level_name(was)),
                    OMS_LS("to", oms_log_level_name(level)));
            oms_logger_set_level(d->log, level);
        }
        reload_tls(d, &next);
    }
    oms_config_free(&next);
    omsd_notify("READY=1\nSTATUS=reloaded");
}

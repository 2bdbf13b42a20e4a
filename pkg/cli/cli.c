/* cli.c — shared command-line plumbing. */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int oms_cli_load_config(const char *prog, const char *path, oms_config *cfg)
{
    char err[512];
    if (oms_config_defaults(cfg) != OMS_OK) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return OMS_EXIT_USAGE;
    }
    if (!path)
        path = getenv("OMS_CONFIG");
    if (path && *path && oms_config_load_file(cfg, path, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return OMS_EXIT_USAGE;
    }
    if (oms_config_apply_env(cfg, getenv, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return OMS_EXIT_USAGE;
    }
    return OMS_EXIT_OK;
}

void oms_cli_print_commands(FILE *out, const oms_cli_command *cmds)
{
    size_t w = 0;
    for (const oms_cli_command *c = cmds; c->name; c++)
        if (strlen(c->name) > w)
            w = strlen(c->name);
    for (const oms_cli_command *c = cmds; c->name; c++)
        fprintf(out, "  %-*s  %s\n", (int)w, c->name, c->summary);
}

int oms_cli_dispatch(const char *prog, const oms_cli_command *cmds, int argc, char **argv)
{
    for (const oms_cli_command *c = cmds; c->name; c++)
        if (strcmp(c->name, argv[0]) == 0)
            return c->run(argc, argv);
    fprintf(stderr, "%s: '%s' is not a command (try '%s --help')\n", prog, argv[0], prog);
    return OMS_EXIT_USAGE;
}

int oms_cli_usage_error(const char *prog_cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* "omsctl tail" → program "omsctl" for the prefix */
    char prog[64];
    snprintf(prog, sizeof prog, "%s", prog_cmd);
    char *sp = strchr(prog, ' ');
    if (sp)
        *sp = '\0';
    fprintf(stderr, "%s: %s\ntry '%s --help'\n", prog, msg, prog_cmd);
    return OMS_EXIT_USAGE;
}

int oms_cli_parse_long(const char *prog_cmd, const char *opt, const char *val, long min, long max,
                       long *out)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max) {
        oms_cli_usage_error(prog_cmd, "%s: expected an integer between %ld and %ld, got '%s'", opt,
                            min, max, val);
        return -1;
    }
    *out = v;
    return 0;
}

char *oms_cli_read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    if (f != stdin)
        fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}

bool oms_cli_isatty(FILE *f)
{
    return isatty(fileno(f)) == 1;
}

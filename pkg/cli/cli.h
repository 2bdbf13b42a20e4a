/* cli.h — what the command-line programs share: configuration loading in
 * the same order as omsd (defaults, file, environment), subcommand tables,
 * and terminal helpers. */
#ifndef OMS_CLI_H
#define OMS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "config/config.h"

/* Exit codes of every program (STYLE: 0 ok, 1 failed, 2 usage/config). */
enum { OMS_EXIT_OK = 0, OMS_EXIT_FAIL = 1, OMS_EXIT_USAGE = 2 };

/* Load the configuration: defaults, then `path` (or $OMS_CONFIG when path is
 * NULL; no file at all is fine), then the environment. On error prints
 * "PROG: ..." to stderr and returns OMS_EXIT_USAGE; else 0. */
int oms_cli_load_config(const char *prog, const char *path, oms_config *cfg);

typedef int (*oms_cli_handler)(int argc, char **argv);

typedef struct oms_cli_command {
    const char *name;
    oms_cli_handler run;
    const char *summary; /* one line for the listing */
} oms_cli_command;

/* Dispatch argv[0] among cmds (NULL-name terminated). An unknown name prints
 * "PROG: 'x' is not a command (try 'PROG --help')" and returns 2. */
int oms_cli_dispatch(const char *prog, const oms_cli_command *cmds, int argc, char **argv);

/* Print the commands table, aligned, to out. */
void oms_cli_print_commands(FILE *out, const oms_cli_command *cmds);

/* Report a usage error: "PROG: msg" then "try 'PROG CMD --help'"; returns 2. */
int oms_cli_usage_error(const char *prog_cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parse a non-negative integer option value; on error prints and returns -1. */
int oms_cli_parse_long(const char *prog_cmd, const char *opt, const char *val, long min, long max,
                       long *out);

/* Read a whole file (or stdin for "-") into a NUL-terminated malloc'd buffer. */
char *oms_cli_read_file(const char *path, size_t *len);

bool oms_cli_isatty(FILE *f);

#endif

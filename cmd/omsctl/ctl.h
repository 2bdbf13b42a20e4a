/* ctl.h — omsctl's subcommands. Each lives in its own file. */
#ifndef OMSCTL_H
#define OMSCTL_H

#include <signal.h>

#include "cli/cli.h"

extern volatile sig_atomic_t ctl_stop;
void ctl_install_signals(void);

/* Load the configuration (--config, $OMS_CONFIG) and apply --brokers. */
int ctl_config(oms_config *cfg, const char *config_path, const char *brokers);

int cmd_tail(int argc, char **argv);
int cmd_health(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_users(int argc, char **argv);
int cmd_broadcast(int argc, char **argv);
int cmd_notify(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_lag(int argc, char **argv);
int cmd_completion(int argc, char **argv);
int cmd_topics(int argc, char **argv);
int cmd_schemas(int argc, char **argv);
int cmd_projections(int argc, char **argv);
int cmd_order(int argc, char **argv);
int cmd_alerts(int argc, char **argv);

#endif

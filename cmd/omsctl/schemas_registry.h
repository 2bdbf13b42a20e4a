/* schemas_registry.h — the schema registry actions of `omsctl schemas`. */
#ifndef OMSCTL_SCHEMAS_REGISTRY_H
#define OMSCTL_SCHEMAS_REGISTRY_H

#include <stdbool.h>

#include "avro/avro.h"
#include "config/config.h"

/* Register the latest schema of each event type (from st) under its
 * topic's subject ("<topic>-value"); prints the ids. Exit code. */
int ctl_schemas_register(const oms_config *cfg, const oms_avro_store *st, bool json);

/* Check the latest schema of each event type against the newest version
 * registered under its subject with the same record name: compatible (both
 * ways), backward only (our readers read the registered data), incompatible
 * (exit 1) or not registered. Exit code. */
int ctl_schemas_compat(const oms_config *cfg, const oms_avro_store *st, bool json);

/* Every subject, version, id and record name in the registry. Exit code. */
int ctl_schemas_list_registry(const oms_config *cfg, bool json);

#endif

/* fuzz_config.c — the YAML loaders of pkg/config: oms_config_load_string
 * (configs/omsd.yaml's shape) on top of the defaults, then
 * oms_config_validate, and oms_topics_load_string (configs/topics.yaml's).
 * Invariants: an error leaves a message naming where; a load that succeeds
 * leaves every string set (never NULL) and the numbers in their ranges; a
 * topic list that loads has names and positive partition counts. */
#include <string.h>

#include "config/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    oms_config cfg;
    FUZZ_CHECK(oms_config_defaults(&cfg) == OMS_OK, "defaults");
    err[0] = '\0';
    int rc = oms_config_load_string(&cfg, (const char *)data, size, "fuzz.yaml", err, sizeof err);
    if (rc != OMS_OK) {
        FUZZ_CHECK(rc == OMS_ECONFIG || rc == OMS_EIO || rc == OMS_ENOMEM, "rc %d", rc);
        FUZZ_CHECK(err[0] != '\0', "an error without a message");
    } else {
        FUZZ_CHECK(cfg.server.host && cfg.server.cors_origin && cfg.server.tls_cert &&
                       cfg.server.tls_key && cfg.server.web_root && cfg.auth.jwt_secret &&
                       cfg.auth.algorithm && cfg.auth.public_key_file && cfg.auth.issuer &&
                       cfg.auth.audience && cfg.kafka.brokers && cfg.kafka.topic_orders &&
                       cfg.kafka.topic_inventory && cfg.kafka.topic_notifications &&
                       cfg.kafka.topic_dlq && cfg.kafka.projection_group && cfg.database.host &&
                       cfg.database.user && cfg.database.password && cfg.database.name &&
                       cfg.log.level && cfg.log.format && cfg.schemas.dir,
                   "a string setting is NULL after a successful load");
        FUZZ_CHECK(cfg.server.port >= 1 && cfg.server.port <= 65535, "port %d", cfg.server.port);
        FUZZ_CHECK(cfg.database.port >= 1 && cfg.database.port <= 65535, "database port %d",
                   cfg.database.port);
        FUZZ_CHECK(cfg.kafka.nprops <= OMS_CONFIG_MAX_PROPS, "nprops %zu", cfg.kafka.nprops);
        for (size_t i = 0; i < cfg.kafka.nprops; i++)
            FUZZ_CHECK(cfg.kafka.props[i].key && cfg.kafka.props[i].value, "property %zu", i);
        err[0] = '\0';
        if (oms_config_validate(&cfg, err, sizeof err) != OMS_OK)
            FUZZ_CHECK(err[0] != '\0', "a validation error without a message");
    }
    oms_config_free(&cfg);

    oms_topic_list tl;
    memset(&tl, 0, sizeof tl);
    err[0] = '\0';
    rc = oms_topics_load_string(&tl, (const char *)data, size, "fuzz-topics.yaml", err, sizeof err);
    if (rc != OMS_OK) {
        FUZZ_CHECK(err[0] != '\0', "a topics error without a message");
    } else {
        for (size_t i = 0; i < tl.count; i++) {
            FUZZ_CHECK(tl.topics[i].name && tl.topics[i].name[0], "topic %zu has no name", i);
            FUZZ_CHECK(tl.topics[i].partitions > 0, "topic %zu: %d partitions", i,
                       tl.topics[i].partitions);
            FUZZ_CHECK(tl.topics[i].replication_factor > 0, "topic %zu: replication %d", i,
                       tl.topics[i].replication_factor);
            FUZZ_CHECK(tl.topics[i].nconfigs <= OMS_TOPIC_MAX_CONFIGS, "nconfigs");
        }
    }
    oms_topics_free(&tl);
    return 0;
}

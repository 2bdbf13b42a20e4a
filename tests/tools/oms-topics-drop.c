/* oms-topics-drop — delete the Kafka topics a test or benchmark created.
 *
 *   oms-topics-drop --brokers LIST PREFIX...
 *
 * Every topic whose name starts with one of the PREFIXes is deleted (each
 * PREFIX must start with "oms-" and be at least 8 characters, so a slip
 * cannot name the cluster's own topics). Tests and benchmarks make topics
 * of their own for every run (oms-t-NAME-<random>.*); a broker that keeps
 * them all ends up with tens of thousands of partitions and runs out of
 * file descriptors. Loopback brokers only; bounded in time (--timeout-ms,
 * default 15,000). Exit 0 when every matching topic was deleted (or none
 * matched), 1 when a deletion failed, 2 on a usage error. */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "oms-topics-drop"

static bool brokers_are_loopback(const char *list)
{
    const char *p = list;
    if (!*p)
        return false;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (!(n >= 4 && strncmp(p, "127.", 4) == 0) && !(n >= 9 && strncmp(p, "localhost", 9) == 0))
            return false;
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

static int usage(const char *msg)
{
    fprintf(stderr, PROG ": %s\ntry '" PROG " --help'\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    const char *brokers = getenv("KAFKA_BROKERS");
    long timeout_ms = 15000;
    static const struct option opts[] = {{"brokers", required_argument, NULL, 'b'},
                                         {"timeout-ms", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "b:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            brokers = optarg;
            break;
        case 't': {
            char *end;
            timeout_ms = strtol(optarg, &end, 10);
            if (*end || timeout_ms < 100 || timeout_ms > 600000)
                return usage("--timeout-ms: a number of milliseconds, 100 to 600000");
            break;
        }
        case 'h':
            printf("usage: " PROG " [--brokers LIST] [--timeout-ms MS] PREFIX...\n"
                   "Deletes every Kafka topic whose name starts with a PREFIX (each starting\n"
                   "with 'oms-', at least 8 characters). --brokers defaults to $KAFKA_BROKERS;\n"
                   "loopback brokers only.\n");
            return 0;
        default:
            return usage("unknown option");
        }
    }
    if (!brokers || !brokers_are_loopback(brokers))
        return usage("--brokers (or KAFKA_BROKERS): loopback brokers only (127.x or localhost)");
    if (optind >= argc)
        return usage("name at least one PREFIX");
    for (int i = optind; i < argc; i++)
        if (strncmp(argv[i], "oms-", 4) != 0 || strlen(argv[i]) < 8)
            return usage("a PREFIX starts with 'oms-' and has at least 8 characters");

    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    int rc = 0;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, (int)timeout_ms);
    if (e) {
        fprintf(stderr, PROG ": cannot list topics at '%s': %s\n", brokers, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return 1;
    }
    rd_kafka_DeleteTopic_t **del = calloc((size_t)md->topic_cnt + 1, sizeof *del);
    size_t n = 0;
    for (int t = 0; del && t < md->topic_cnt; t++)
        for (int i = optind; i < argc; i++)
            if (strncmp(md->topics[t].topic, argv[i], strlen(argv[i])) == 0) {
                del[n++] = rd_kafka_DeleteTopic_new(md->topics[t].topic);
                break;
            }
    rd_kafka_metadata_destroy(md);
    if (!del) {
        fprintf(stderr, PROG ": out of memory\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    if (n > 0) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
        rd_kafka_AdminOptions_set_operation_timeout(ao, (int)timeout_ms, err, sizeof err);
        rd_kafka_AdminOptions_set_request_timeout(ao, (int)timeout_ms, err, sizeof err);
        rd_kafka_DeleteTopics(rk, del, n, ao, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)timeout_ms + 2000);
        if (!ev) {
            fprintf(stderr, PROG ": no answer from '%s' in time\n", brokers);
            rc = 1;
        } else if (rd_kafka_event_error(ev)) {
            fprintf(stderr, PROG ": %s\n", rd_kafka_event_error_string(ev));
            rc = 1;
        } else {
            size_t cnt = 0;
            const rd_kafka_topic_result_t **res =
                rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);
            for (size_t i = 0; i < cnt; i++)
                if (rd_kafka_topic_result_error(res[i]) &&
                    rd_kafka_topic_result_error(res[i]) != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                    fprintf(stderr, PROG ": '%s': %s\n", rd_kafka_topic_result_name(res[i]),
                            rd_kafka_topic_result_error_string(res[i]));
                    rc = 1;
                }
        }
        if (ev)
            rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(ao);
        rd_kafka_queue_destroy(q);
        rd_kafka_DeleteTopic_destroy_array(del, n);
    }
    free(del);
    rd_kafka_destroy(rk);
    return rc;
}

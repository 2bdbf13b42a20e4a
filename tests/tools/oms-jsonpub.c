/* oms-jsonpub — JSON lines from stdin to a Kafka topic, each record with a
 * header naming the Centrifugo channels it goes to.
 *
 * Benchmarks feed it `oms-producer simulate --dry-run --print`, so that
 * Centrifugo's Kafka consumer (publication data mode) reads the same events,
 * as JSON, that omsd reads as Avro. The channel comes from the event's
 * `type`: orders for OrderCreated and OrderStatusChanged, inventory for
 * InventoryChanged, system for SystemNotification, user.N for a
 * UserNotification to user N. Each line is sent as it arrives (the producer
 * paces), with the linger oms-producer uses, so both servers see the same
 * batching. Loopback brokers only. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "oms-jsonpub"

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    stop = sig;
}

static uint64_t delivered, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err)
        failed++;
    else
        delivered++;
}

/* every broker in LIST must be on loopback (127.x or localhost) */
static bool brokers_are_loopback(const char *list)
{
    const char *p = list;
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

/* the channel of one event, "" when it has none */
static void channel_of(json_t *ev, char *out, size_t cap)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    out[0] = '\0';
    if (!type)
        return;
    if (strcmp(type, "OrderCreated") == 0 || strcmp(type, "OrderStatusChanged") == 0)
        snprintf(out, cap, "orders");
    else if (strcmp(type, "InventoryChanged") == 0)
        snprintf(out, cap, "inventory");
    else if (strcmp(type, "SystemNotification") == 0)
        snprintf(out, cap, "system");
    else if (strcmp(type, "UserNotification") == 0)
        snprintf(out, cap, "user.%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(ev, "userId")));
}

static int usage(const char *msg)
{
    fprintf(stderr, PROG ": %s\ntry '" PROG " --help'\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"header", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *brokers = getenv("KAFKA_BROKERS"), *topic = NULL;
    const char *header = "centrifugo-channels";
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 'H': header = optarg; break;
        case 'h':
            printf("usage: " PROG " --topic T [--brokers LIST] [--header NAME] < events.jsonl\n"
                   "\n"
                   "Produces each JSON line of stdin to topic T as it arrives, with header\n"
                   "NAME (default centrifugo-channels) set to the event's channel: orders,\n"
                   "inventory, system or user.N by its type. Loopback brokers only\n"
                   "(default: $KAFKA_BROKERS). Prints a summary line on stderr.\n"
                   "\n"
                   "exit status: 0 every record delivered, 1 not, 2 usage\n");
            return 0;
        default: return usage("unknown or incomplete option");
        }
    }
    if (optind < argc)
        return usage("unexpected argument");
    if (!topic)
        return usage("--topic is required");
    if (!brokers || !*brokers)
        return usage("no brokers: give --brokers or set KAFKA_BROKERS");
    if (!brokers_are_loopback(brokers)) {
        fprintf(stderr, PROG ": refusing '%s': only loopback brokers are allowed\n", brokers);
        return 2;
    }

    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* the settings of pkg/kafka's producer, so both servers get the same batches */
    const char *kv[][2] = {{"bootstrap.servers", brokers}, {"linger.ms", "5"},
                           {"enable.idempotence", "true"}, {"acks", "all"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof err) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, PROG ": %s\n", err);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, PROG ": cannot create the producer: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    conf = NULL; /* owned by rk now */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t sent = 0, bad = 0;
    while (!stop && (n = getline(&line, &cap, stdin)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] != '{')
            continue;
        json_t *ev = json_loadb(line, (size_t)n, 0, NULL);
        char ch[64];
        if (!ev) {
            bad++;
            continue;
        }
        channel_of(ev, ch, sizeof ch);
        const char *key = NULL;
        char kbuf[64];
        json_t *k = json_object_get(ev, "orderId");
        if (!k)
            k = json_object_get(ev, "productId");
        if (!k)
            k = json_object_get(ev, "userId");
        if (json_is_string(k))
            key = json_string_value(k);
        else if (json_is_integer(k))
            key = (snprintf(kbuf, sizeof kbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(k)),
                   kbuf);
        rd_kafka_resp_err_t e;
        do {
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_VALUE(line, (size_t)n),
                                  RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                                  RD_KAFKA_V_HEADER(header, ch, (ssize_t)strlen(ch)), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 10);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !stop);
        json_decref(ev);
        if (e) {
            fprintf(stderr, PROG ": cannot produce: %s\n", rd_kafka_err2str(e));
            failed++;
            continue;
        }
        sent++;
        rd_kafka_poll(rk, 0);
    }
    free(line);
    rd_kafka_flush(rk, 10000);
    uint64_t left = (uint64_t)rd_kafka_outq_len(rk);
    fprintf(stderr, PROG ": %" PRIu64 " sent, %" PRIu64 " delivered, %" PRIu64 " failed, %" PRIu64
                    " bad lines, %" PRIu64 " not delivered at exit\n",
            sent, delivered, failed, bad, left);
    rd_kafka_destroy(rk);
    return failed || left || bad ? 1 : 0;
}

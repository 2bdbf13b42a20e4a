/* postoken.h — position tokens: one opaque, compact, signed string that
 * names a position in every partition of the event topics (DESIGN §3.5,
 * §3.6). Socket.IO recovery appends one to each event as its offset and the
 * SSE stream sends one as each event's `id`, so that one event's token,
 * whoever receives it, is enough to resume every partition.
 *
 * Text form: one class digit, lowercase hex '0'..'f' (what the receiver had:
 * bit 0 orders, bit 1 inventory, bit 2 a filter on a subscription, bit 3
 * its subscription state was not stored; not signed, because it only
 * chooses among subscriptions the role allows anyway, and the bits 2 and 3
 * can only make a recovery refuse: see cmd/omsd/sstore.c), then base64url
 * (no padding) of
 *     version (1) | ntopics (varint) | per topic: nparts (varint), then
 *     each partition's offset as a zigzag varint of its difference from
 *     the previous one (the first from 0) | HMAC-SHA256 truncated to 12
 * The MAC covers the bytes before it and the topic names the key was made
 * for, so a token edited by a client, or made for other topics, or signed
 * with another secret, is refused. Offsets are Kafka offsets, -1 meaning
 * "before the first record".
 *
 * Process ids (Socket.IO's `pid`): 12 random bytes and a 9-byte MAC over
 * them and the user id, base64url; one given to a user is refused for
 * another. Pure code: no sockets, no globals. */
#ifndef OMS_GATEWAY_POSTOKEN_H
#define OMS_GATEWAY_POSTOKEN_H

#include <stddef.h>
#include <stdint.h>

#define OMS_POSTOKEN_MAX_TOPICS 8
#define OMS_POSTOKEN_MAX_PARTS 4096 /* all topics together */
#define OMS_POSTOKEN_PID_LEN 28     /* characters of a pid */

/* The bits of a token's class digit. */
#define OMS_POSTOKEN_CLS_ORDERS 1u    /* subscribed to orders */
#define OMS_POSTOKEN_CLS_INVENTORY 2u /* subscribed to inventory */
#define OMS_POSTOKEN_CLS_FILTERED 4u  /* a subscription had a filter */
#define OMS_POSTOKEN_CLS_UNSAVED 8u   /* the subscription state was not stored */
#define OMS_POSTOKEN_MAX_CLASS 15u

/* The character of class cls (0..15): '0'..'9', 'a'..'f'. */
char oms_postoken_class_char(unsigned cls);

typedef struct oms_postoken oms_postoken;

/* A key for the topics named (in this order; every instance must list the
 * same), derived from secret (len >= 16 bytes). NULL and errbuf filled on a
 * bad argument or out of memory. Free with oms_postoken_free. */
oms_postoken *oms_postoken_new(const unsigned char *secret, size_t len, const char *const *topics,
                               int ntopics, char *errbuf, size_t errlen);
void oms_postoken_free(oms_postoken *k);

/* The most characters a token for total partitions can have (without the
 * NUL). */
size_t oms_postoken_max_len(int total_parts);

/* Encode vec (the offsets of nparts[0] partitions of the first topic, then
 * of the second, ...; ntopics as given to oms_postoken_new) with class cls
 * (0..OMS_POSTOKEN_MAX_CLASS) into out, NUL-terminated. Returns the length, or OMS_EINVAL (bad
 * arguments), OMS_ERANGE (out too small), OMS_ENOMEM. */
int oms_postoken_encode(const oms_postoken *k, unsigned cls, const int *nparts,
                        const int64_t *vec, char *out, size_t outlen);

/* Decode and verify tok (len bytes). nparts: the partition counts this
 * process has; vec receives their offsets. 0, or
 *   OMS_EINVAL   malformed (bad class, base64, varint, version, an offset < -1)
 *   OMS_EDENIED  the MAC does not verify (edited, or another secret/topics)
 *   OMS_ENOTFOUND well-formed and signed, but for another partition layout
 *   OMS_ENOMEM   out of memory (nothing verified) */
int oms_postoken_decode(const oms_postoken *k, const char *tok, size_t len, unsigned *cls,
                        const int *nparts, int64_t *vec);

/* A new process id for user_id into out (OMS_POSTOKEN_PID_LEN + 1 bytes).
 * 0, OMS_EIO when no randomness, OMS_ENOMEM. */
int oms_postoken_pid_new(const oms_postoken *k, int64_t user_id, char *out);
/* Whether pid was made by this key for user_id: 0, OMS_EDENIED, OMS_EINVAL
 * (malformed), OMS_ENOMEM. */
int oms_postoken_pid_check(const oms_postoken *k, const char *pid, int64_t user_id);

#endif

/* events_internal.h — helpers shared by the files of pkg/events (the fast
 * decoder, the JSON writer, validation). Private to pkg/events; the unit
 * tests include it to check the helpers against their references. */
#ifndef OMS_EVENTS_INTERNAL_H
#define OMS_EVENTS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events/events.h"

/* UTF-8 check with the rules of pkg/avro's decoder (RFC 3629: no overlongs,
 * surrogates or code points above U+10FFFF; NUL is valid). Returns n when
 * s[0..n) is valid, else the offset of the first bad sequence's lead byte. */
size_t oms_ev_utf8_check(const uint8_t *s, size_t n);

/* True when the NUL-terminated text s is, beyond doubt, a JSON object that
 * jansson's json_loads() accepts and that json_dumps(JSON_COMPACT) of the
 * result writes back byte for byte (oms_json_dumps, which is what the
 * fallback uses): no whitespace, reals only as oms_json_fmt_real() spells
 * them (the shortest round trip), integers of at most 18 digits and not
 * "-0", strings of valid UTF-8 with no control characters and no escapes
 * but \" and \\, no repeated key in an object, at most 32 levels and 32
 * keys per object. False means "cannot tell cheaply", not "invalid": ask
 * jansson then. */
bool oms_ev_json_is_compact_object(const char *s);

/* oms_event_validate(), told whether ev->data_json is already known to be
 * a JSON object (then it is not parsed again). */
int oms_ev_validate(const oms_event *ev, bool data_checked, char *errbuf, size_t errlen);

/* oms_iso8601_ms() of ms into out (32 bytes), without stdio for years
 * 1970..9999 (and the date worked out once per second and thread).
 * Returns the length. */
size_t oms_ev_fmt_iso8601_ms(int64_t ms, char *out);

/* The fast reader of JSON records (event_jsonrec.c): 1 when buf is a
 * record it is sure of, then ev holds it (arena-owned, validated) exactly as
 * the jansson path would give it; 0 when unsure (ev zeroed): ask that path. */
int oms_ev_json_record_fast(const uint8_t *buf, size_t len, oms_event *ev);
/* The jansson path alone (the reference the fast reader is held to). Same
 * contract as oms_event_decode_json_record. */
int oms_ev_json_record_generic(const uint8_t *buf, size_t len, oms_event *ev, char *errbuf,
                               size_t errlen);

#endif
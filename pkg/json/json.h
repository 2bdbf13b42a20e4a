/* json.h — the project's one JSON serializer and number formatter.
 *
 * jansson writes a real as "%.17g" (or a fixed JSON_REAL_PRECISION), so
 * 755.32 went out as 755.32000000000005. Everything the project writes as
 * JSON goes through here instead: jansson's own output, byte for byte,
 * except that a real is written in its shortest form that reads back to the
 * same double (as JavaScript, Python and Go print numbers): 755.32.
 *
 * Memory: oms_json_dumps() returns a malloc'd string the caller frees with
 * free(); oms_json_fmt_real() writes into the caller's buffer. Nothing is
 * kept between calls; every function is thread-safe. */
#ifndef OMS_JSON_H
#define OMS_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Room oms_json_fmt_real() needs, NUL included
 * ("-2.2250738585072014e-308" is 24). */
#define OMS_JSON_REAL_MAX 32

/* A finite double as the project writes a JSON real: the shortest decimal
 * digits that strtod() reads back to v (the nearest such string when
 * several have that length), in jansson's notation: "%g" style with the
 * exponent form for exponents below -4 or above 16, the exponent with no
 * '+' and no leading zeros, and ".0" appended when the text would otherwise
 * read back as an integer (so 100.0 stays a real, 1e21 is "1e21").
 * -0.0 is "-0.0". v must be finite (NaN and infinities are no JSON; jansson
 * refuses to hold them). Returns the length and NUL-terminates out. */
size_t oms_json_fmt_real(double v, char out[OMS_JSON_REAL_MAX]);

/* The shortest significant digits of a finite v > 0: *digits (no trailing
 * zeros, 1 to 17 digits) and the decimal exponent of the first one
 * (v ~ 0.DIGITS * 10^(exp10 + 1)). Returns the number of digits.
 * oms_json_fmt_real() is this plus the notation; exposed for the tests. */
int oms_json_shortest(double v, uint64_t *digits, int *exp10);

/* json_dumps(json, flags) with reals as oms_json_fmt_real() writes them:
 * same string escaping, same object key order (jansson's iteration order,
 * or sorted with JSON_SORT_KEYS), same separators and indentation. Flags
 * honoured: JSON_COMPACT, JSON_INDENT(n), JSON_SORT_KEYS, JSON_ENCODE_ANY,
 * JSON_ENSURE_ASCII, JSON_ESCAPE_SLASH, JSON_EMBED; JSON_REAL_PRECISION is
 * ignored (reals are always the shortest round trip). NULL when json_dumps
 * would fail (NULL input, a scalar without JSON_ENCODE_ANY, a string that is
 * not UTF-8, a cycle) or on ENOMEM. The caller frees the result. */
char *oms_json_dumps(const json_t *json, size_t flags);

#endif

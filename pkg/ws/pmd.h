/* pmd.h — permessage-deflate (RFC 7692) as an lws extension of our own,
 * for servers (omsd) and clients (oms-load).
 *
 * Why not lws' own (lws_extension_callback_pm_deflate): in Debian's lws
 * 4.1.6 it aborts the process (an assert, extension-permessage-deflate.c
 * line 351) when the last bytes of a peer's compressed message inflate to
 * more than its inflate buffer, which any client can arrange; and it
 * deflates every message once per connection.
 *
 * What this one does:
 * - negotiates: a server accepts the first permessage-deflate offer and
 *   answers "server_no_context_takeover; client_no_context_takeover" (RFC
 *   7692 7.1.1: a server may, offered or not) and echoes a
 *   server_max_window_bits=N it was offered (oms_pmd_server_headers); a
 *   client offers it with client_max_window_bits, as browsers do;
 * - inflates what the peer sends, each message whole: no partial output is
 *   held back, no buffer of fixed size can be outgrown; a message that
 *   inflates to more than max_message bytes is cut at max_message + 1 bytes
 *   (the receiver sees it is too big) and the rest of it is skipped without
 *   inflating; the inflater is dropped after each message unless the peer
 *   keeps its context; a control frame with RSV1, or a stream that does not
 *   inflate, fails the connection (as RFC 7692 8 asks);
 * - lws does not tell an extension a frame's opcode: a pong with a payload
 *   that arrives between the frames of a fragmented compressed message is
 *   taken as part of it (the message then fails to inflate and the
 *   connection closes). Clients send small messages as one frame;
 * - never deflates: what the program writes goes out as it was given (omsd
 *   writes its compressed frames itself, raw, with RSV1).
 *
 * Built on lws 4.1's extension interface: two structures of its private
 * ABI (the payload buffers and the return codes of LWS_EXT_CB_PAYLOAD_RX)
 * are repeated in pmd.c, checked against the version at build time.
 *
 * Threads: the callbacks run on the thread that services the connection;
 * the inflated bytes go to the protocol callback in a buffer of that
 * thread's own. */
#ifndef OMS_WS_PMD_H
#define OMS_WS_PMD_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

/* lws_context_creation_info.extensions for a server, and for a client. */
extern const struct lws_extension oms_pmd_server_exts[];
extern const struct lws_extension oms_pmd_client_exts[];

/* The most a message may inflate to unless said otherwise: 1 MiB. */
#define OMS_PMD_MAX_MESSAGE ((size_t)1 << 20)

/* Server, from LWS_CALLBACK_ADD_HEADERS (`in`) of a WebSocket upgrade:
 * when the extension was negotiated, completes its answer header (see
 * above) and sets the connection's max_message (0: the default). Does
 * nothing for anything else (HTTP answers). Returns 0, or -1 when the
 * answer does not fit. */
int oms_pmd_server_headers(struct lws *wsi, void *in, size_t max_message);

/* Whether the extension is active on this WebSocket connection. */
bool oms_pmd_active(struct lws *wsi);

/* Server: the longest message we may compress for this client: its
 * server_max_window_bits=N allows only distances of 2^N, which a message of
 * at most 2^N bytes, compressed on its own, never exceeds. SIZE_MAX when it
 * set none. */
size_t oms_pmd_server_max_len(struct lws *wsi);

/* Client: the most a message from the server may inflate to (as above);
 * 0 when the extension is not active on wsi. */
int oms_pmd_set_max_message(struct lws *wsi, size_t max_message);

#endif

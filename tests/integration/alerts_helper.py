#!/usr/bin/env python3
"""Helpers of 0990-alerts.sh: place orders through `oms-producer serve`, read
back what Mailpit (HTTP API) and Bugsink (its SQLite database) received, check
it, and a TCP proxy to cut Postgres off without touching the shared server.

Every check prints why it failed and exits 1; 0 when it holds."""
import json
import socket
import sqlite3
import sys
import threading
import time
import urllib.request


def http(method, url, token=None, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def place(port, staff, customer, n, seconds, out, product):
    """Restock a product, then place n orders over `seconds`; one JSON line per order."""
    n, seconds, product = int(n), float(seconds), int(product)
    base = "http://127.0.0.1:%s" % port
    st, _ = http("POST", "%s/inventory/%s/restock" % (base, product), staff,
                 {"quantity": 100000, "productName": "Café crème ☕", "threshold": 5})
    if st not in (200, 201):
        sys.exit("restock answered %s" % st)
    t0 = time.time()
    with open(out, "a") as f:
        for i in range(n):
            due = t0 + seconds * i / max(n, 1)
            if due > time.time():
                time.sleep(due - time.time())
            items = [{"productId": product, "quantity": 1 + i % 3, "price": 2.5}]
            st, body = http("POST", base + "/order/orders", customer, {"addressId": 3, "items": items})
            if st != 201:
                sys.exit("order %d answered %s: %s" % (i, st, body))
            f.write(json.dumps(body) + "\n")
    print("%d orders in %.1f s" % (n, time.time() - t0))


def cancel(port, token, orders_file):
    """Cancel the first order of the file."""
    o = orders_of(orders_file)[0]
    st, body = http("PATCH", "http://127.0.0.1:%s/order/orders/%s/status" % (port, o["orderId"]),
                    token, {"status": "cancelled"})
    if st != 200:
        sys.exit("cancel answered %s: %s" % (st, body))


def mails(api):
    out, start = [], 0
    while True:
        with urllib.request.urlopen("%s/api/v1/messages?start=%d&limit=200" % (api, start)) as r:
            page = json.load(r)
        msgs = page.get("messages") or []
        for m in msgs:
            with urllib.request.urlopen("%s/api/v1/message/%s" % (api, m["ID"])) as r:
                full = json.load(r)
            with urllib.request.urlopen("%s/api/v1/message/%s/headers" % (api, m["ID"])) as r:
                full["headers"] = json.load(r)
            with urllib.request.urlopen("%s/api/v1/message/%s/raw" % (api, m["ID"])) as r:
                full["raw"] = r.read().decode("utf-8", "replace")
            out.append(full)
        start += len(msgs)
        if not msgs or start >= page.get("total", 0):
            return out


def events(db):
    c = sqlite3.connect(db, timeout=30)
    try:
        return [json.loads(r[0]) for r in c.execute("SELECT data FROM events_event ORDER BY ingested_at")]
    finally:
        c.close()


def orders_of(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def alias(o):
    return o.get("aliasId") or o.get("orderId")


def msg_text(e):
    m = e.get("message")
    return m.get("formatted", "") if isinstance(m, dict) else (m or "")


def check_content(orders_file, api, db, recipients):
    """Each order: one mail to every recipient, one Sentry event, right content."""
    orders = orders_of(orders_file)
    ms, evs = mails(api), events(db)
    want_rcpt = sorted(recipients.split(","))
    for o in orders:
        a = alias(o)
        mine = [m for m in ms if a in m["Subject"]]
        if len(mine) != 1:
            sys.exit("order %s: %d mails, want 1" % (a, len(mine)))
        m = mine[0]
        got_rcpt = sorted(x["Address"] for x in m["To"])
        if got_rcpt != want_rcpt:
            sys.exit("order %s: mail to %s, want %s" % (a, got_rcpt, want_rcpt))
        text, html = m["Text"], m["HTML"]
        total = "%.2f" % float(o.get("totalAmount", o.get("total", 0)))
        for part, body in (("text", text), ("html", html)):
            for want in (a, str(o["userId"]), total, "Caf", "http://console.test/oms"):
                if want not in body:
                    sys.exit("order %s: %s part lacks %r:\n%s" % (a, part, want, body))
        raw, h = m["raw"], m["headers"]
        if "multipart/alternative" not in raw or "text/plain; charset=UTF-8" not in raw or \
                "text/html; charset=UTF-8" not in raw:
            sys.exit("order %s: not multipart/alternative text+html" % a)
        for k in ("Date", "Message-Id", "Mime-Version"):
            if k not in h:
                sys.exit("order %s: no %s header: %s" % (a, k, sorted(h)))
        if "=?UTF-8?B?" not in raw.split("\r\n\r\n")[0]:
            sys.exit("order %s: the UTF-8 sender name is not RFC 2047 encoded" % a)
        if m["From"]["Name"] != "OMS Alertes – Café":
            sys.exit("order %s: From name %r" % (a, m["From"]["Name"]))
        mine = [e for e in evs if msg_text(e) == "Order creation alert triggered for order %s" % a]
        if len(mine) != 1:
            sys.exit("order %s: %d sentry events, want 1" % (a, len(mine)))
        e = mine[0]
        tags = e.get("tags") or {}
        if isinstance(tags, list):
            tags = dict(tags)
        want_tags = {"orderId": o["orderId"], "aliasId": a, "userId": str(o["userId"]),
                     "status": o.get("status", "created")}
        for k, v in want_tags.items():
            if tags.get(k) != v:
                sys.exit("order %s: tag %s = %r, want %r" % (a, k, tags.get(k), v))
        extra = e.get("extra") or {}
        if abs(float(extra.get("total", -1)) - float(total)) > 0.005 or not extra.get("items"):
            sys.exit("order %s: extra %r" % (a, extra))
        if e.get("level") != "info":
            sys.exit("order %s: level %r" % (a, e.get("level")))
    print("%d orders: mails and sentry events as expected" % len(orders))


def check_once(orders_file, api, db):
    """Every order exactly once in Mailpit and in Bugsink, and nothing else."""
    orders = orders_of(orders_file)
    ms, evs = mails(api), events(db)
    for o in orders:
        a = alias(o)
        nm = sum(1 for m in ms if a in m["Subject"] and "Digest" not in m["Subject"])
        ne = sum(1 for e in evs if msg_text(e).endswith("for order %s" % a))
        if nm != 1 or ne != 1:
            sys.exit("order %s: %d mails, %d sentry events; want 1 and 1" % (a, nm, ne))
    print("%d orders, each once in mail and in sentry" % len(orders))


def count(api, db, what):
    if what == "mails":
        print(len(mails(api)))
    else:
        print(len(events(db)))


def check_digest(orders_file, api, db):
    """Singles plus digests account for each order of the burst exactly once."""
    orders = orders_of(orders_file)
    aliases = {alias(o) for o in orders}
    ms, evs = mails(api), events(db)
    seen = {}
    digest_mails, digest_count = 0, 0
    for m in ms:
        if "Digest" in m["Subject"]:
            digest_mails += 1
            n = int(m["Subject"].split("Digest: ")[1].split(" ")[0])
            lines = [l for l in m["Text"].splitlines() if l[:1].isdigit() and ". " in l]
            if len(lines) != n:
                sys.exit("digest %r lists %d notices" % (m["Subject"], len(lines)))
            digest_count += n
            for l in lines:
                a = l.split(". ", 1)[1].split(" · ")[0]
                seen[a] = seen.get(a, 0) + 1
        else:
            for a in aliases:
                if a in m["Subject"]:
                    seen[a] = seen.get(a, 0) + 1
    missing = [a for a in aliases if seen.get(a, 0) == 0]
    twice = [a for a in aliases if seen.get(a, 0) > 1]
    if missing or twice:
        sys.exit("burst: %d missing (%s), %d more than once (%s)" %
                 (len(missing), missing[:5], len(twice), twice[:5]))
    singles = sum(1 for a in aliases if any(a in m["Subject"] and "Digest" not in m["Subject"] for m in ms))
    sentry_digest = sum(int((e.get("extra") or {}).get("count", 0)) for e in evs
                        if msg_text(e).startswith("Alert digest:"))
    sentry_single = sum(1 for e in evs for a in [msg_text(e).rsplit(" ", 1)[-1]] if a in aliases)
    if sentry_digest + sentry_single < len(aliases):
        sys.exit("sentry: %d singles + %d in digests < %d" % (sentry_single, sentry_digest, len(aliases)))
    print("burst of %d: %d single mails + %d in %d digest mails; sentry %d singles + %d in digests"
          % (len(aliases), singles, digest_count, digest_mails, sentry_single, sentry_digest))


def has_event(db, needle, tag=None):
    """A Bugsink event whose message contains needle (and tag k=v when given)."""
    for e in events(db):
        if needle in msg_text(e):
            tags = e.get("tags") or {}
            if isinstance(tags, list):
                tags = dict(tags)
            if tag:
                k, v = tag.split("=", 1)
                if tags.get(k) != v:
                    continue
            print(json.dumps({"message": msg_text(e), "level": e.get("level"), "tags": tags,
                              "extra": e.get("extra")}))
            return
    sys.exit("no sentry event with %r%s" % (needle, " and " + tag if tag else ""))


def count_events(db, needle):
    print(sum(1 for e in events(db) if needle in msg_text(e)))


def proxy(listen_port, host, port):
    """Forward 127.0.0.1:listen_port to host:port until killed."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(listen_port)))
    srv.listen(64)

    def pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    while True:
        c, _ = srv.accept()
        try:
            u = socket.create_connection((host, int(port)))
        except OSError:
            c.close()
            continue
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()


if __name__ == "__main__":
    fn = globals()[sys.argv[1].replace("-", "_")]
    fn(*sys.argv[2:])

-- 0003_ws_sessions.sql — Socket.IO sessions' subscription state, for
-- connection-state recovery on any instance (README "Recovery for Socket.IO
-- and Server-Sent Events clients", cmd/omsd/sstore.c). One row per session
-- pid (the Socket.IO `pid`, signed for its user), written when the session's
-- subscriptions change and before the client is told they did; read when a
-- client recovers with that pid; rows untouched for resume.session_ttl_s are
-- deleted, and a session ended by the client (DISCONNECT) deletes its own.
--
-- subscriptions: {"orders": FILTER | null, "inventory": FILTER | null}, one
-- member per subscription, FILTER its normalized filter (null: none).
CREATE TABLE ws_sessions (
    pid           text COLLATE "C" PRIMARY KEY,
    user_id       bigint NOT NULL,
    subscriptions jsonb NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ws_sessions IS 'Socket.IO sessions'' subscriptions and filters, by pid, for connection-state recovery.';
CREATE INDEX ws_sessions_updated_idx ON ws_sessions (updated_at);

-- 0001_projections.sql — the read models of DESIGN §3.4 and the stored
-- consumer offsets. Applied in one transaction by omsd at start (unless
-- projections.migrate_on_start is false) or by `omsctl projections migrate`.
--
-- Every read-model row carries the stream position of the last event applied
-- to it: `position` ("TOPIC:PARTITION:OFFSET", for people) and
-- pos_partition/pos_offset (for the guards). All events of one order (key
-- orderId) or one product (key productId) share a partition, so an upsert is
-- applied only when its (partition, offset) is above the row's: a re-delivered
-- or replayed event never moves a row backwards.

-- Key columns are text COLLATE "C": identifiers compare byte by byte, which
-- keeps the B-tree comparisons cheap whatever the database's locale is.
CREATE TABLE orders (
    order_id      text COLLATE "C" PRIMARY KEY,
    alias_id      text NOT NULL,
    user_id       bigint NOT NULL,
    status        text NOT NULL
        CONSTRAINT orders_status_check
        CHECK (status IN ('created', 'confirmed', 'shipped', 'delivered', 'cancelled')),
    total_amount  numeric NOT NULL CONSTRAINT orders_total_amount_check CHECK (total_amount >= 0),
    items         jsonb NOT NULL DEFAULT '[]'
        CONSTRAINT orders_items_check CHECK (jsonb_typeof(items) = 'array'),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    position      text NOT NULL,
    pos_partition integer NOT NULL,
    pos_offset    bigint NOT NULL
) WITH (fillfactor = 80); -- room on the page: status changes stay HOT updates
CREATE INDEX orders_user_id_idx ON orders (user_id);
COMMENT ON TABLE orders IS 'Current state of each order (OrderCreated, then OrderStatusChanged).';
COMMENT ON COLUMN orders.position IS 'Stream position TOPIC:PARTITION:OFFSET of the last event applied.';

-- One row per event that set an order's status, its creation included. A
-- status change for an order that was never created violates the foreign key
-- (below) and goes to the dead-letter topic.
CREATE TABLE order_status_history (
    order_id    text COLLATE "C" NOT NULL,
    status      text NOT NULL
        CONSTRAINT order_status_history_status_check
        CHECK (status IN ('created', 'confirmed', 'shipped', 'delivered', 'cancelled')),
    occurred_at timestamptz NOT NULL,
    position    text COLLATE "C" NOT NULL,
    event_id    uuid NOT NULL,
    PRIMARY KEY (order_id, position)
);
COMMENT ON TABLE order_status_history IS 'One row per status event of an order (creation included).';

-- The foreign key order_status_history.order_id -> orders.order_id, ON DELETE
-- CASCADE, checked once per statement over all its rows rather than by a
-- declared REFERENCES, whose per-row check locks each referenced order row
-- (a WAL record per history row): the projections insert history rows by
-- the thousand. A violation raises SQLSTATE 23503 (foreign_key_violation)
-- like the declared constraint would.
CREATE FUNCTION oms_history_order_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    SELECT n.order_id INTO missing FROM oms_new_rows n
     WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = n.order_id)
     LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'foreign_key_violation',
            MESSAGE = 'insert on table "order_status_history" violates foreign key '
                      '"order_status_history_order_id_fkey"',
            DETAIL = format('Key (order_id)=(%s) is not present in table "orders".', missing),
            CONSTRAINT = 'order_status_history_order_id_fkey';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER order_status_history_order_id_fkey
    AFTER INSERT ON order_status_history REFERENCING NEW TABLE AS oms_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oms_history_order_exists();

CREATE FUNCTION oms_orders_delete_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM order_status_history h USING oms_old_rows o WHERE h.order_id = o.order_id;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_delete_history
    AFTER DELETE ON orders REFERENCING OLD TABLE AS oms_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oms_orders_delete_history();

CREATE TABLE inventory (
    product_id    bigint PRIMARY KEY CONSTRAINT inventory_product_id_check CHECK (product_id > 0),
    product_name  text NOT NULL,
    quantity      integer NOT NULL CONSTRAINT inventory_quantity_check CHECK (quantity >= 0),
    threshold     integer NOT NULL CONSTRAINT inventory_threshold_check CHECK (threshold >= 0),
    status        text NOT NULL
        CONSTRAINT inventory_status_check
        CHECK (status IN ('in_stock', 'low_stock', 'out_of_stock', 'restocked')),
    updated_at    timestamptz NOT NULL,
    position      text NOT NULL,
    pos_partition integer NOT NULL,
    pos_offset    bigint NOT NULL
) WITH (fillfactor = 80);
COMMENT ON TABLE inventory IS 'Current stock of each product (last InventoryChanged).';

CREATE TABLE notifications (
    event_id      uuid PRIMARY KEY,
    kind          text NOT NULL CONSTRAINT notifications_kind_check CHECK (kind IN ('user', 'system')),
    user_id       bigint,
    title         text NOT NULL,
    message       text NOT NULL,
    severity      text CONSTRAINT notifications_severity_check
        CHECK (severity IN ('info', 'warning', 'critical')),
    data          jsonb CONSTRAINT notifications_data_check
        CHECK (data IS NULL OR jsonb_typeof(data) = 'object'),
    occurred_at   timestamptz NOT NULL,
    position      text NOT NULL,
    pos_partition integer NOT NULL,
    pos_offset    bigint NOT NULL,
    CONSTRAINT notifications_user_check CHECK ((kind = 'user') = (user_id IS NOT NULL))
);
CREATE INDEX notifications_user_id_idx ON notifications (user_id, occurred_at);
COMMENT ON TABLE notifications IS 'User (kind user, user_id set) and system (broadcast) notifications.';

-- Where each consumer group stands: the next offset to read per partition.
-- Written in the same transaction as the effects of the records before it.
CREATE TABLE oms_offsets (
    group_id    text COLLATE "C" NOT NULL,
    topic       text COLLATE "C" NOT NULL,
    partition   integer NOT NULL CONSTRAINT oms_offsets_partition_check CHECK (partition >= 0),
    next_offset bigint NOT NULL CONSTRAINT oms_offsets_next_offset_check CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
COMMENT ON TABLE oms_offsets IS 'Next offset to read per consumer group and partition (exactly-once projections).';

-- The exactly-once step of a batch, first in its transaction: lock the rows
-- of the batch's partitions (creating missing ones at 0), check that each
-- stored next offset is the one the consumer started the batch from, and
-- store the new ones. When one moved (a rebuild, another instance, a commit
-- whose answer was lost), raise SQLSTATE OMS01: the consumer rolls back and
-- reads again from what is stored.
CREATE FUNCTION oms_offsets_advance(g text, topics text[], parts integer[], expected bigint[],
                                    nexts bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    moved text;
BEGIN
    INSERT INTO oms_offsets (group_id, topic, partition, next_offset)
    SELECT g, u.t, u.p, 0 FROM unnest(topics, parts) AS u(t, p)
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM oms_offsets o
      JOIN unnest(topics, parts) AS u(t, p) ON o.topic = u.t AND o.partition = u.p
     WHERE o.group_id = g
     ORDER BY o.topic, o.partition
       FOR UPDATE OF o;
    SELECT format('%s partition %s: stored %s, expected %s', u.t, u.p, o.next_offset, u.e)
      INTO moved
      FROM unnest(topics, parts, expected) AS u(t, p, e)
      JOIN oms_offsets o ON o.group_id = g AND o.topic = u.t AND o.partition = u.p
     WHERE o.next_offset <> u.e
     LIMIT 1;
    IF moved IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'OMS01', MESSAGE = 'stored offsets moved: ' || moved;
    END IF;
    UPDATE oms_offsets o SET next_offset = u.n, updated_at = now()
      FROM unnest(topics, parts, nexts) AS u(t, p, n)
     WHERE o.group_id = g AND o.topic = u.t AND o.partition = u.p;
END $$;

-- Per-room streams: every event carries, for each of its rooms, its position in that room
-- (1 for the room's first event, +1 for each next one), so a subscriber can tell a gap in the
-- rooms it follows from an event of a room it does not (ids are per tenant and skip). See
-- "Room streams" in shared/protocol.ts.

-- The head of each room's stream. Written in the committing transaction after the tenant's
-- tenant_cursors row is locked, so a room's offsets are handed out in id (= commit) order.
CREATE TABLE room_heads (
  tenant_id   text   NOT NULL,
  room        text   NOT NULL,
  last_offset bigint NOT NULL,
  last_id     bigint NOT NULL,
  PRIMARY KEY (tenant_id, room)
);

-- Identifies this event log. Positions are only comparable within one epoch: a client holding a
-- position of another epoch (the database was recreated, or restored from a backup — then set a
-- new value) is told its history is gone instead of being served the wrong events.
CREATE TABLE stream_epoch (
  epoch text NOT NULL
);
INSERT INTO stream_epoch (epoch) VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 16));

-- offsets[i] is the event's position in rooms[i].
ALTER TABLE events ADD COLUMN offsets bigint[] NOT NULL DEFAULT '{}';

-- Events written before this migration: number each room's events in id order.
WITH numbered AS (
  SELECT e.tenant_id, e.id, r.ord,
         row_number() OVER (PARTITION BY e.tenant_id, r.room ORDER BY e.id) AS pos
  FROM events e, unnest(e.rooms) WITH ORDINALITY AS r(room, ord)
), per_event AS (
  SELECT tenant_id, id, array_agg(pos ORDER BY ord) AS offsets FROM numbered GROUP BY tenant_id, id
)
UPDATE events e SET offsets = per_event.offsets
FROM per_event WHERE e.tenant_id = per_event.tenant_id AND e.id = per_event.id;

INSERT INTO room_heads (tenant_id, room, last_offset, last_id)
SELECT e.tenant_id, r.room, count(*), max(e.id)
FROM events e, unnest(e.rooms) AS r(room)
GROUP BY e.tenant_id, r.room;

ALTER TABLE events ALTER COLUMN offsets DROP DEFAULT;

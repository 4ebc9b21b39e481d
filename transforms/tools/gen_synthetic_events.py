#!/usr/bin/env python3
"""Write the synthetic Debezium Cassandra fixtures in src/test/resources/events/.

Each file is one Kafka record as Kafka Connect's JsonConverter (schemas.enable=true) writes it:
    {"topic": ..., "key": {"schema": ..., "payload": ...}, "value": {"schema": ..., "payload": ...}}
("value": null is a Kafka tombstone). The schemas mirror what debezium-connector-cassandra builds
(KeyValueSchema, CassandraSchemaFactory, CassandraSourceInfoStructMaker, SchemaFactory in
debezium-core); see "Confirmed from the connector's source" in docs/decisions/0002-row-contract.md.
Events captured from the real agent replace these files one for one (same names, same format).

Run from anywhere: python3 transforms/tools/gen_synthetic_events.py
"""

import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "src/test/resources/events"
PREFIX = "cdc"  # the agent's topic.prefix
VERSION = "3.4.1.Final"

# ---- column value schemas (CassandraTypeKafkaSchemaBuilders: every one optional) ----------------
TEXT = {"type": "string", "optional": True}
INT = {"type": "int32", "optional": True}
DOUBLE = {"type": "double", "optional": True}
UUID = {"type": "string", "optional": True, "name": "io.debezium.data.Uuid", "version": 1}
TIMESTAMP = {"type": "int64", "optional": True, "name": "io.debezium.time.Timestamp", "version": 1}
LIST_TEXT = {"type": "array", "items": dict(TEXT), "optional": True}

TABLES = {
    # CREATE TABLE shop.orders (tenant text, customer_id uuid, order_id int, amount double,
    #   note text, placed_at timestamp, qty int, status text, tags list<text>,
    #   PRIMARY KEY ((tenant, customer_id), order_id)) WITH cdc = true;
    ("shop", "orders"): {
        "partition": [("tenant", TEXT), ("customer_id", UUID)],
        "clustering": [("order_id", INT)],
        # the driver lists regular columns in name order
        "regular": [
            ("amount", DOUBLE),
            ("note", TEXT),
            ("placed_at", TIMESTAMP),
            ("qty", INT),
            ("status", TEXT),
            ("tags", LIST_TEXT),
        ],
    },
    # CREATE TABLE shop.customers (id uuid PRIMARY KEY, email text, name text) WITH cdc = true;
    ("shop", "customers"): {
        "partition": [("id", UUID)],
        "clustering": [],
        "regular": [("email", TEXT), ("name", TEXT)],
    },
    # CREATE TABLE shop.readings (sensor text, day int, seq int, reading double,
    #   PRIMARY KEY (sensor, day, seq)) WITH cdc = true;
    ("shop", "readings"): {
        "partition": [("sensor", TEXT)],
        "clustering": [("day", INT), ("seq", INT)],
        "regular": [("reading", DOUBLE)],
    },
}


def field(name, schema):
    return dict(schema, field=name)


def cell_schema(name, value_schema):
    return {
        "type": "struct",
        "fields": [
            field("value", value_schema),
            {"type": "int64", "optional": True, "field": "deletion_ts"},
            {"type": "boolean", "optional": False, "field": "set"},
        ],
        "optional": True,
        "name": "cell_value",
        "version": 1,
        "field": name,
    }


def range_schema(name):
    item = {
        "type": "struct",
        "fields": [
            {"type": "string", "optional": False, "field": "name"},
            {"type": "string", "optional": False, "field": "value"},
            {"type": "string", "optional": False, "field": "type"},
        ],
        "optional": False,
        "name": "clustering_value",
        "version": 1,
    }
    return {
        "type": "struct",
        "fields": [
            {"type": "string", "optional": False, "field": "method"},
            {
                "type": "array",
                "items": item,
                "optional": False,
                "name": "clustering_values",
                "version": 1,
                "field": "values",
            },
        ],
        "optional": True,
        "name": name,
        "version": 1,
        "field": name,
    }


SNAPSHOT_ENUM = {
    "type": "string",
    "optional": True,
    "name": "io.debezium.data.Enum",
    "version": 1,
    "parameters": {
        "allowed": "true,first,first_in_data_collection,"
        "last_in_data_collection,last,false,incremental"
    },
    "default": "false",
}

SOURCE_SCHEMA = {
    "type": "struct",
    "fields": [
        {"type": "string", "optional": False, "field": "version"},
        {"type": "string", "optional": False, "field": "connector"},
        {"type": "string", "optional": False, "field": "name"},
        {"type": "int64", "optional": False, "field": "ts_ms"},
        field("snapshot", SNAPSHOT_ENUM),
        {"type": "string", "optional": False, "field": "db"},
        {"type": "string", "optional": True, "field": "sequence"},
        {"type": "int64", "optional": True, "field": "ts_us"},
        {"type": "int64", "optional": True, "field": "ts_ns"},
        {"type": "string", "optional": False, "field": "cluster"},
        {"type": "string", "optional": False, "field": "file"},
        {"type": "int32", "optional": False, "field": "pos"},
        {"type": "string", "optional": False, "field": "keyspace"},
        {"type": "string", "optional": False, "field": "table"},
    ],
    "optional": False,
    "name": "source",
    "version": 1,
    "field": "source",
}


def columns(t):
    return t["partition"] + t["clustering"] + t["regular"]


def key_schema(ks, table):
    t = TABLES[(ks, table)]
    return {
        "type": "struct",
        "fields": [field(n, s) for n, s in t["partition"] + t["clustering"]],
        "optional": False,
        "name": f"io.debezium.connector.cassandra.{PREFIX}.{ks}.{table}.Key",
    }


def after_schema(ks, table, cell_override=None):
    t = TABLES[(ks, table)]
    fields = []
    for n, s in columns(t):
        if cell_override and n in cell_override:
            fields.append(field(n, cell_override[n]))
        else:
            fields.append(cell_schema(n, s))
    fields += [range_schema("_range_start"), range_schema("_range_end")]
    return {
        "type": "struct",
        "fields": fields,
        "optional": False,
        "name": "after",
        "version": 1,
        "field": "after",
    }


def value_schema(ks, table, drop_op=False, cell_override=None):
    fields = [{"type": "int64", "optional": False, "field": "ts_ms"}]
    if not drop_op:
        fields.append({"type": "string", "optional": False, "field": "op"})
    fields += [SOURCE_SCHEMA, after_schema(ks, table, cell_override)]
    return {
        "type": "struct",
        "fields": fields,
        "optional": False,
        "name": f"io.debezium.connector.cassandra.{PREFIX}.{ks}.{table}.Envelope",
    }


def cell(value, deletion_ts=None):
    return {"value": value, "deletion_ts": deletion_ts, "set": True}


def source(ks, table, ts_us, snapshot=False, file="CommitLog-8-1764079990001.log", pos=4711):
    if snapshot:
        file, pos = "", -1  # OffsetPosition.defaultOffsetPosition()
    return {
        "version": VERSION,
        "connector": "cassandra",
        "name": PREFIX,
        "ts_ms": ts_us // 1000,
        "snapshot": "true" if snapshot else "false",
        "db": "NULL",
        "sequence": None,
        "ts_us": ts_us,
        "ts_ns": ts_us * 1000,
        "cluster": "Test Cluster",
        "file": file,
        "pos": pos,
        "keyspace": ks,
        "table": table,
    }


def event(
    name,
    ks,
    table,
    key,
    op,
    ts_us,
    after,
    snapshot=False,
    drop_op=False,
    cell_override=None,
    source_override=None,
):
    t = TABLES[(ks, table)]
    full_after = {n: None for n, _ in columns(t)}
    full_after.update({"_range_start": None, "_range_end": None})
    full_after.update(after)
    payload = {"ts_ms": ts_us // 1000 + 250}  # processing time, a little after the write
    if not drop_op:
        payload["op"] = op
    src = source(ks, table, ts_us, snapshot)
    if source_override:
        src.update(source_override)
    payload["source"] = src
    payload["after"] = full_after
    doc = {
        "topic": f"{PREFIX}.{ks}.{table}",
        "key": {"schema": key_schema(ks, table), "payload": key},
        "value": {"schema": value_schema(ks, table, drop_op, cell_override), "payload": payload},
    }
    write(name, doc)


def write(name, doc):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")


CUST = "5b6f2f0e-1c1a-4e8b-9a57-2d1f3c4b5a69"
ORDER_KEY = {"tenant": "acme", "customer_id": CUST, "order_id": 7}
ORDER_PK_CELLS = {"tenant": cell("acme"), "customer_id": cell(CUST), "order_id": cell(7)}
PARTITION_CELLS = {"tenant": cell("acme"), "customer_id": cell(CUST)}
REGULAR = [n for n, _ in TABLES[("shop", "orders")]["regular"]]


def main():
    # INSERT INTO shop.orders (tenant, customer_id, order_id, amount, placed_at, qty, status, tags)
    #   VALUES ('acme', <uuid>, 7, 19.99, '2025-11-25 14:13:20.123Z', 2, 'NEW',
    #   ['gift', 'express']);
    event(
        "insert",
        "shop",
        "orders",
        ORDER_KEY,
        "i",
        1764080000123456,
        {
            **ORDER_PK_CELLS,
            "amount": cell(19.99),
            "placed_at": cell(1764080000123),
            "qty": cell(2),
            "status": cell("NEW"),
            "tags": cell(["gift", "express"]),
        },
    )

    # UPDATE shop.orders SET status = 'SHIPPED'
    #   WHERE tenant='acme' AND customer_id=<uuid> AND order_id=7;
    event(
        "update_one_column",
        "shop",
        "orders",
        ORDER_KEY,
        "u",
        1764080100000000,
        {**ORDER_PK_CELLS, "status": cell("SHIPPED")},
    )

    # UPDATE shop.orders SET note = null, qty = 3 WHERE ...;  (a cell tombstone: value null)
    event(
        "update_set_null",
        "shop",
        "orders",
        ORDER_KEY,
        "u",
        1764080150000000,
        {**ORDER_PK_CELLS, "note": cell(None), "qty": cell(3)},
    )

    # DELETE FROM shop.orders WHERE tenant='acme' AND customer_id=<uuid> AND order_id=7;
    ts = 1764080200000000
    event(
        "row_delete",
        "shop",
        "orders",
        ORDER_KEY,
        "d",
        ts,
        {**ORDER_PK_CELLS, **{n: cell(None, ts) for n in REGULAR}},
    )

    # DELETE FROM shop.orders WHERE tenant='acme' AND customer_id=<uuid>;  (partition delete)
    ts = 1764080300000000
    pkey = {"tenant": "acme", "customer_id": CUST, "order_id": None}
    event(
        "partition_delete",
        "shop",
        "orders",
        pkey,
        "d",
        ts,
        {**PARTITION_CELLS, "order_id": cell(None, ts), **{n: cell(None, ts) for n in REGULAR}},
    )

    # BEGIN BATCH DELETE ... WHERE tenant='acme' AND customer_id=<uuid> USING TIMESTAMP ts;
    #   INSERT ... USING TIMESTAMP ts+999; APPLY BATCH;
    # -> source.ts_us is the partition update's max timestamp
    event(
        "partition_delete_in_batch",
        "shop",
        "orders",
        pkey,
        "d",
        ts + 999,
        {**PARTITION_CELLS, "order_id": cell(None, ts), **{n: cell(None, ts) for n in REGULAR}},
    )

    # DELETE FROM shop.orders WHERE tenant='acme' AND customer_id=<uuid>
    #   AND order_id > 10 AND order_id <= 20;
    int32 = "org.apache.cassandra.db.marshal.Int32Type"
    event(
        "range_delete",
        "shop",
        "orders",
        pkey,
        "r",
        1764080400000000,
        {
            **PARTITION_CELLS,
            "_range_start": {
                "method": "EXCL_START_BOUND",
                "values": [{"name": "order_id", "value": "10", "type": int32}],
            },
            "_range_end": {
                "method": "INCL_END_BOUND",
                "values": [{"name": "order_id", "value": "20", "type": int32}],
            },
        },
    )

    # DELETE FROM shop.readings WHERE sensor='s-1' AND day = 5 AND seq >= 3;
    # Debezium fills values from a HashMap: the order of the items is not the clustering order.
    event(
        "range_delete_multi_clustering",
        "shop",
        "readings",
        {"sensor": "s-1", "day": None, "seq": None},
        "r",
        1764080450000000,
        {
            "sensor": cell("s-1"),
            "_range_start": {
                "method": "INCL_START_BOUND",
                "values": [
                    {"name": "seq", "value": "3", "type": int32},
                    {"name": "day", "value": "5", "type": int32},
                ],
            },
            "_range_end": {
                "method": "INCL_END_BOUND",
                "values": [{"name": "day", "value": "5", "type": int32}],
            },
        },
    )

    # INSERT INTO shop.orders (tenant, customer_id, order_id, status, amount)
    #   VALUES (...) USING TTL 3600;
    # an expiring cell's deletion_ts is its local expiry time (seconds) in microseconds
    ts = 1764080500000000
    expiry = (1764080500 + 3600) * 1_000_000
    event(
        "ttl_insert",
        "shop",
        "orders",
        {**ORDER_KEY, "order_id": 8},
        "i",
        ts,
        {
            **ORDER_PK_CELLS,
            "order_id": cell(8),
            "status": cell("NEW", expiry),
            "amount": cell(5.5, expiry),
        },
    )

    # snapshot (SnapshotProcessor): every column, op i, source.snapshot "true", ts = query execution
    # time (ms precision); a TTL'd cell's deletion_ts = execution time + TTL
    exec_ms = 1764090000123
    event(
        "snapshot_row",
        "shop",
        "orders",
        {**ORDER_KEY, "order_id": 9},
        "i",
        exec_ms * 1000,
        {
            **ORDER_PK_CELLS,
            "order_id": cell(9),
            "amount": cell(42.0),
            "note": cell(None),
            "placed_at": cell(1764000000000),
            "qty": cell(1),
            "status": cell("PAID", exec_ms * 1000 + 86400 * 1_000_000),
            "tags": cell([]),
        },
        snapshot=True,
    )

    # tombstones.on.delete=true: the delete is followed by a record with a null value
    write(
        "kafka_tombstone",
        {
            "topic": f"{PREFIX}.shop.orders",
            "key": {"schema": key_schema("shop", "orders"), "payload": ORDER_KEY},
            "value": None,
        },
    )

    # DELETE FROM shop.customers WHERE id=<uuid>;  a table without clustering columns: the
    # partition delete is a row delete (no null key column)
    cid = "0d9c7a8e-2f4b-4d1e-8c6a-7b5e3f2a1d09"
    ts = 1764080600000000
    event(
        "row_delete_no_clustering",
        "shop",
        "customers",
        {"id": cid},
        "d",
        ts,
        {"id": cell(cid), "email": cell(None, ts), "name": cell(None, ts)},
    )

    # ---- malformed ----
    event(
        "malformed_unknown_op",
        "shop",
        "orders",
        ORDER_KEY,
        "x",
        1764080700000000,
        {**ORDER_PK_CELLS, "status": cell("NEW")},
    )
    event(
        "malformed_no_op",
        "shop",
        "orders",
        ORDER_KEY,
        None,
        1764080700000000,
        {**ORDER_PK_CELLS, "status": cell("NEW")},
        drop_op=True,
    )
    event(
        "malformed_no_ts_us",
        "shop",
        "orders",
        ORDER_KEY,
        "u",
        1764080700000000,
        {**ORDER_PK_CELLS, "status": cell("NEW")},
        source_override={"ts_us": None, "ts_ns": None},
    )
    event(
        "malformed_cell_not_struct",
        "shop",
        "orders",
        ORDER_KEY,
        "u",
        1764080700000000,
        {**ORDER_PK_CELLS, "status": "NEW"},
        cell_override={"status": TEXT},
    )


if __name__ == "__main__":
    main()

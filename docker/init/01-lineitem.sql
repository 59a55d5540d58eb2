-- A lineitem-shaped sample table (TPC-H's columns, deterministic values from
-- generate_series, not dbgen's), 60,000 rows: TPC-H scale factor 0.01. The
-- same generator as `volley demo --postgres`.
CREATE TABLE lineitem (
	l_orderkey      bigint        NOT NULL,
	l_partkey       bigint        NOT NULL,
	l_suppkey       bigint        NOT NULL,
	l_linenumber    integer       NOT NULL,
	l_quantity      numeric(15,2) NOT NULL,
	l_extendedprice numeric(15,2) NOT NULL,
	l_discount      numeric(15,2) NOT NULL,
	l_tax           numeric(15,2) NOT NULL,
	l_returnflag    char(1)       NOT NULL,
	l_linestatus    char(1)       NOT NULL,
	l_shipdate      date          NOT NULL,
	l_commitdate    date          NOT NULL,
	l_receiptdate   date          NOT NULL,
	l_shipinstruct  char(25)      NOT NULL,
	l_shipmode      char(10)      NOT NULL,
	l_comment       varchar(44)   NOT NULL
);

INSERT INTO lineitem
SELECT i / 4 + 1,
       (i * 7919) % 200000 + 1,
       (i * 104729) % 10000 + 1,
       (i % 4 + 1)::integer,
       (i % 50 + 1)::numeric(15,2),
       round(((i * 31) % 100000 + 900 + (i % 100) / 100.0)::numeric, 2),
       ((i % 11) / 100.0)::numeric(15,2),
       ((i % 9) / 100.0)::numeric(15,2),
       (ARRAY['A','N','R'])[i % 3 + 1],
       (ARRAY['F','O'])[i % 2 + 1],
       DATE '1992-01-02' + (i % 2500)::integer,
       DATE '1992-01-31' + (i % 2500)::integer,
       DATE '1992-01-03' + (i % 2530)::integer,
       (ARRAY['DELIVER IN PERSON','COLLECT COD','NONE','TAKE BACK RETURN'])[i % 4 + 1],
       (ARRAY['AIR','FOB','MAIL','RAIL','REG AIR','SHIP','TRUCK'])[i % 7 + 1],
       md5(i::text)
FROM generate_series(0::bigint, 59999) AS i;

ANALYZE lineitem;

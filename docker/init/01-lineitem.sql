-- A lineitem-shaped sample table (TPC-H's 16 columns and types, deterministic
-- values from generate_series, not dbgen's), 60,000 rows: TPC-H scale factor
-- 0.01. The same generator as volley demo --postgres and volley bench
-- (integration/pgbench.LineitemDDL and LineitemInsert); a test checks it.
CREATE TABLE lineitem (
	l_orderkey int8 NOT NULL, l_partkey int8 NOT NULL, l_suppkey int8 NOT NULL, l_linenumber int4 NOT NULL,
	l_quantity numeric(15,2) NOT NULL, l_extendedprice numeric(15,2) NOT NULL,
	l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL,
	l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL,
	l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
	l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL);

INSERT INTO lineitem
SELECT g / 4 + 1, (g * 7919) % 200000 + 1, (g * 104729) % 10000 + 1, g % 7 + 1,
	(g % 50 + 1)::numeric(15,2),
	((g * 7919) % 10490000 + 90000) / 100.0,
	(g % 11) / 100.0, (g % 9) / 100.0,
	(ARRAY['R','A','N'])[g % 3 + 1]::char(1), (ARRAY['O','F'])[g % 2 + 1]::char(1),
	DATE '1992-01-02' + (g % 2526)::int, DATE '1992-01-31' + (g % 2466)::int, DATE '1992-01-03' + (g % 2557)::int,
	(ARRAY['DELIVER IN PERSON','COLLECT COD','NONE','TAKE BACK RETURN'])[g % 4 + 1],
	(ARRAY['REG AIR','AIR','RAIL','SHIP','TRUCK','MAIL','FOB'])[g % 7 + 1],
	substr(md5(g::text) || md5((g + 1)::text), 1, (10 + g % 34)::int)
FROM generate_series(0, 60000::int8 - 1) g;

ANALYZE lineitem;

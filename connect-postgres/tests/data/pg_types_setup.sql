CREATE EXTENSION hstore;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN price AS numeric(8,3);
CREATE TABLE t (id serial PRIMARY KEY, i2 int2, i8 int8 NOT NULL DEFAULT 42, f4 real, f8 float8, num numeric(10,2) DEFAULT 1.5, vnum numeric,
 b bool DEFAULT true, t text DEFAULT 'hello', vc varchar(10) NOT NULL DEFAULT 'x', ch char(5), by bytea, d date DEFAULT '2020-01-01', tm time, tm3 time(3), ts timestamp, ts3 timestamp(3),
 tstz timestamptz, tstz0 timestamptz(0), iv interval, j jsonb, u uuid, mo money, m mood, ms mood[], p price, ia int[], ta text[], na numeric(6,2)[],
 b1 bit(1), b10 bit(10), vb varbit, pt point, h hstore, ip inet, net cidr, mac macaddr, dinf date, tsinf timestamp, tstzinf timestamptz, r int4range, tsv tsvector, x xml, tz timetz,
 created timestamptz NOT NULL DEFAULT now(), big text, nulld text DEFAULT 'dflt', gen_i2 int2 DEFAULT floor(random()), arith int4 DEFAULT (1 + 1), gen_b bool NOT NULL DEFAULT (random() > 2),
 lit_iv interval DEFAULT '1 day', lit_u uuid DEFAULT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', gen_d date DEFAULT CURRENT_DATE, lit_tstz timestamptz(3) DEFAULT '2020-01-02 03:04:05.5+00');
INSERT INTO t (i2,f4,f8,vnum,ch,by,tm,tm3,ts,ts3,tstz,tstz0,iv,j,u,mo,m,ms,p,ia,ta,na,b1,b10,vb,pt,h,ip,net,mac,dinf,tsinf,tstzinf,r,tsv,x,tz,big,nulld)
VALUES (-2, 1.5, 'NaN', 1.500, 'ab', '\x00ff', '13:45:10.5', '13:45:10.123', '2024-02-29 12:00:00.123456', '2024-02-29 12:00:00.123', '2024-02-29 12:00:00.5+02', '2024-02-29 12:00:00+02',
 '1 year 2 mons 3 days 04:05:06.5', '{"a": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 12.34, 'ok', '{sad,happy}', 12.5, '{1,NULL,3}', '{"a b",c}', '{1.5,NULL}',
 B'1', B'0000000101', B'100000000', '(1.5,-2)', '"k"=>"v", "n"=>NULL', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', 'infinity', '-infinity', 'infinity', '[1,5)', 'a fat cat', '<a>x</a>', '10:15:30.5+02', repeat('z', 10), NULL);

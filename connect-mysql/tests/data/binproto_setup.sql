SET SESSION sql_mode = '';
CREATE TABLE t (id int PRIMARY KEY, f float, d double, dt date, dtm datetime(6), tm time(3),
  u int unsigned, y year);
INSERT INTO t VALUES (1, 1.2345678, 1.2345678901234567, '2020-00-10',
  '2024-02-29 23:59:59.000001', '-100:00:00.5', 4294967295, 1999);

CREATE TABLE t (
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ti tinyint, tiu tinyint unsigned, si smallint DEFAULT 7, siu smallint unsigned, mi mediumint, miu mediumint unsigned,
  i int NOT NULL DEFAULT 0, iu int unsigned, bi bigint, biu bigint unsigned,
  dec1 decimal(10,2) DEFAULT 1.50, f float, d double, b1 bit(1), b10 bit(10), bo bool,
  ch char(5), vc varchar(20) DEFAULT 'x', tx text, bin binary(4), vb varbinary(8), bl blob,
  dt date DEFAULT '2020-01-01', tm time(6), tmn time, dtm datetime, dtm3 datetime(3), dtm6 datetime(6), ts timestamp(6) NULL DEFAULT NULL,
  yr year, en enum('a','b','c'), st set('x','y','z'), js json, zd date, created timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO t (ti,tiu,si,siu,mi,miu,i,iu,bi,biu,dec1,f,d,b1,b10,bo,ch,vc,tx,bin,vb,bl,dt,tm,tmn,dtm,dtm3,dtm6,ts,yr,en,st,js,zd)
VALUES (-1, 255, -2, 65535, -3, 16777215, -4, 4294967295, -5, 18446744073709551615, 123.45, 1.5, 2.25, b'1', b'0000000101', true,
 'ab', 'hello', 'a text', 'bin', 'vb', 'blob', '2024-02-29', '13:45:10.123456', '-838:59:59', '2024-02-29 12:00:00', '2024-02-29 12:00:00.123',
 '2024-02-29 12:00:00.123456', '2024-02-29 12:00:00.5', 2024, 'b', 'x,z', '{"a": 1}', '0000-00-00');

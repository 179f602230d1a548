CREATE TABLE s (
  id int NOT NULL PRIMARY KEY,
  g geometry, p point, l linestring, pg polygon, mp multipoint, gc geometrycollection,
  pn point NOT NULL
);
INSERT INTO s VALUES (1, ST_GeomFromText('POINT(1 2)'), ST_GeomFromText('POINT(3.5 -4.25)'),
 ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)'), ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 4, 0 0))'),
 ST_GeomFromText('MULTIPOINT(1 1, 2 2)'), ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))'),
 ST_GeomFromText('POINT(0 0)'));

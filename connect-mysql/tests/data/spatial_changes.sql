INSERT INTO s VALUES (2, ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))', 4326), NULL,
 ST_GeomFromText('LINESTRING(5 5, 6 6)'), NULL, NULL, NULL, ST_GeomFromText('POINT(-1.5 7)', 3857));

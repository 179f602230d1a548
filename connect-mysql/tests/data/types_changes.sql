BEGIN;
INSERT INTO t (ti,tiu,si,siu,mi,miu,i,iu,bi,biu,dec1,f,d,b1,b10,bo,ch,vc,tx,bin,vb,bl,dt,tm,tmn,dtm,dtm3,dtm6,ts,yr,en,st,js,zd)
 SELECT ti,tiu,si,siu,mi,miu,i,iu,bi,biu,dec1,f,d,b1,b10,bo,ch,vc,tx,bin,vb,bl,dt,tm,tmn,dtm,dtm3,dtm6,ts,yr,en,st,js,zd FROM t WHERE id = 1;
UPDATE t SET ti = 7, tx = NULL WHERE id = 2;
DELETE FROM t WHERE id = 2;
COMMIT;

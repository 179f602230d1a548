BEGIN;
INSERT INTO t (i2,f4,f8,vnum,ch,by,tm,tm3,ts,ts3,tstz,tstz0,iv,j,u,mo,m,ms,p,ia,ta,na,b1,b10,vb,pt,h,ip,net,mac,dinf,tsinf,tstzinf,r,tsv,x,tz,big,nulld)
 SELECT i2,f4,f8,vnum,ch,by,tm,tm3,ts,ts3,tstz,tstz0,iv,j,u,mo,m,ms,p,ia,ta,na,b1,b10,vb,pt,h,ip,net,mac,dinf,'-infinity','-infinity',r,tsv,x,tz,big,nulld FROM t WHERE id = 1;
UPDATE t SET i2 = 7, big = NULL WHERE id = 2;
DELETE FROM t WHERE id = 2;
COMMIT;

-- DDL as MariaDB applications and tools write it. Statements are separated by lines
-- holding only `;;`. The corpus test runs each against MariaDB, follows it with the
-- schema history's DDL model, and compares the model with information_schema.
CREATE TABLE customers (
  id INT NOT NULL AUTO_INCREMENT,
  email VARCHAR(255) NOT NULL,
  first_name varchar(100) DEFAULT NULL,
  created TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  status ENUM('new','Active','it''s done') NOT NULL DEFAULT 'new',
  flags SET('a','b','c') DEFAULT 'a,b',
  score DECIMAL(10,2) DEFAULT 1.5,
  PRIMARY KEY (id),
  UNIQUE KEY email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
;;
/*!40101 SET @saved_cs_client = @@character_set_client */
;;
CREATE TABLE IF NOT EXISTS `orders` (
  `order_id` bigint(20) unsigned NOT NULL,
  `customer` int(11) NOT NULL,
  `qty` smallint(6) DEFAULT 1,
  `tiny` tinyint(1) NOT NULL DEFAULT 0,
  `mid` mediumint(8) unsigned zerofill DEFAULT NULL,
  `price` double DEFAULT NULL,
  `weight` float(7,3) DEFAULT NULL,
  `bits` bit(12) DEFAULT b'101',
  `code` binary(16) DEFAULT NULL,
  `blobby` mediumblob,
  `note` text,
  `doc` json DEFAULT NULL,
  `day` date DEFAULT '2020-01-01',
  `at` datetime(6) DEFAULT NULL,
  `dur` time(3) DEFAULT NULL,
  `yr` year(4) DEFAULT NULL,
  PRIMARY KEY (`order_id`,`customer`),
  KEY `customer` (`customer`)
) ENGINE=InnoDB DEFAULT CHARSET=latin1 /*!50100 PARTITION BY KEY (order_id) PARTITIONS 2 */
;;
CREATE TABLE events (id serial, payload longtext, kind char(3) CHARACTER SET ascii) PARTITION BY HASH (id) PARTITIONS 3
;;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS phone varchar(20) AFTER email, ALGORITHM=INPLACE, LOCK=NONE
;;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS phone varchar(20)
;;
ALTER TABLE customers ADD COLUMN nickname VARCHAR(30) FIRST
;;
ALTER TABLE customers DROP COLUMN IF EXISTS nickname, DROP COLUMN IF EXISTS nothing_here
;;
ALTER TABLE customers MODIFY first_name VARCHAR(150) NOT NULL DEFAULT ''
;;
ALTER TABLE customers CHANGE COLUMN first_name given_name varchar(150) CHARACTER SET latin1 NULL AFTER phone
;;
ALTER TABLE customers RENAME COLUMN given_name TO forename
;;
ALTER TABLE customers ALTER COLUMN score SET DEFAULT 2.25
;;
ALTER TABLE customers ALTER COLUMN score DROP DEFAULT
;;
ALTER ONLINE TABLE customers ADD COLUMN loyalty INT UNSIGNED NOT NULL DEFAULT 0
;;
ALTER TABLE customers ADD INDEX idx_phone (phone), ADD KEY (loyalty)
;;
ALTER TABLE customers DROP INDEX idx_phone
;;
ALTER TABLE customers CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci
;;
ALTER TABLE customers ENGINE=InnoDB, COMMENT 'people'
;;
ALTER TABLE orders ADD PARTITION PARTITIONS 2
;;
CREATE TABLE order_lines (line int, customer int, CONSTRAINT lines_fk FOREIGN KEY (customer) REFERENCES customers (id)) ENGINE=InnoDB
;;
ALTER TABLE order_lines DROP FOREIGN KEY lines_fk, ADD CONSTRAINT pk PRIMARY KEY (line)
;;
ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (order_id)
;;
ALTER TABLE orders ADD COLUMN (extra1 int, extra2 varchar(5) DEFAULT 'x')
;;
CREATE TABLE orders_copy LIKE orders
;;
CREATE TABLE /* a comment */ `weird name` (`the id` int PRIMARY KEY, `select` varchar(10))
;;
RENAME TABLE orders_copy TO orders_old, `weird name` TO weird2
;;
ALTER TABLE orders_old RENAME TO orders_archive
;;
ALTER TABLE orders_archive RENAME AS orders_archived, ADD COLUMN archived_at datetime
;;
DROP TABLE IF EXISTS orders_archived, never_existed
;;
CREATE TABLE `kv` (`k` varchar(64) NOT NULL, `v` varbinary(1024), n numeric(5), d dec(8,3), r real, fl float, ch char, pt point, PRIMARY KEY (`k`))
;;
TRUNCATE TABLE kv
;;
CREATE INDEX kv_v ON kv (v)
;;
CREATE OR REPLACE VIEW v_customers AS SELECT id, email FROM customers
;;
CREATE TRIGGER kv_trigger BEFORE INSERT ON kv FOR EACH ROW SET NEW.n = 1
;;
DROP TRIGGER kv_trigger
;;
ALTER TABLE kv MODIFY COLUMN n bigint NOT NULL DEFAULT -5, MODIFY ch char(2) FIRST
;;
DROP TABLE weird2

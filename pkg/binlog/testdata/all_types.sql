-- Every type of the envelope type contract (docs/envelope.md), written by
-- pkg/binlog TestTypeContract and pkg/client TestEveryTypeRoundTrip. One
-- statement per block, blocks separated by a line holding only ";".
CREATE DATABASE shop
;
CREATE TABLE shop.all_types (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  flag TINYINT(1), dec1 DECIMAL(10,2), dec2 DECIMAL(65,30), f FLOAT, d DOUBLE,
  b1 BIT(1), b64 BIT(64),
  c CHAR(10), vc VARCHAR(100), tt TINYTEXT, t TEXT, mt MEDIUMTEXT, lt LONGTEXT,
  lat VARCHAR(20) CHARACTER SET latin1,
  bin BINARY(4), vbin VARBINARY(10), tb TINYBLOB, bl BLOB, mb MEDIUMBLOB, lb LONGBLOB,
  j JSON,
  dt DATE, tm TIME, tm6 TIME(6), yr YEAR,
  dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL,
  e ENUM('small','medium','large'), st SET('red','green','blue'),
  g GEOMETRY
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
;
SET SESSION time_zone = '+08:00', SESSION sql_mode = ''
;
INSERT INTO shop.all_types VALUES (1,
	  -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
	  1, '12.50', '-12345678901234567890123456789012345.123456789012345678901234567890', 1.5, -2.718281828459045,
	  b'1', b'1111111111111111111111111111111111111111111111111111111111111111',
	  'abc', '日本語 😀 Ünïcødé "quoted" \\ back\nslash', 'tiny', 'text', 'medium', 'long',
	  'café €',
	  x'00ff0102', x'deadbeef00', x'00', x'000102ff', x'61', x'',
	  '{"a": [1, 2.5, "x"], "b": null, "c": {"d": true}}',
	  '2026-11-21', '-838:59:59', '12:34:56.123456', 2026,
	  '2026-11-21 12:34:56', '2026-11-21 12:34:56.123456', '2026-11-21 12:34:56', '2026-11-21 12:34:56.123456',
	  'medium', 'red,blue',
	  ST_GeomFromText('POINT(1 2)'))
;
INSERT INTO shop.all_types (id) VALUES (2)
;
INSERT INTO shop.all_types (id, dt, dtm, dtm6, ts, ts6, yr, e, st, j, vc, bi, biu) VALUES
	  (3, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', 0, 'small', '', '[]', '', 0, 0)
;
UPDATE shop.all_types SET vc = 'updated', dec1 = '0.05', st = 'red,green,blue', j = '"just a string"', ts = '2000-01-01 08:00:00' WHERE id = 1
;
DELETE FROM shop.all_types WHERE id = 2
;
INSERT INTO shop.all_types (id, dtm, dtm6, ts, ts6, dt) VALUES
	  (4, '1000-01-01 00:00:00', '1969-07-20 20:17:40.123456', '1970-01-01 08:00:01', '2038-01-19 11:14:07.999999', '9999-12-31')
;

-- One database per service; no service reads another's tables.
-- Run once by the postgres image when its data volume is first created.
CREATE DATABASE auth;
CREATE DATABASE training;
CREATE DATABASE reviews;
CREATE DATABASE notify;
CREATE DATABASE audit;

-- The IAM user of docker-compose.yml. As on RDS, IAM users are members of
-- rds_iam; the emulated front refuses tokens for users who are not.
CREATE ROLE rds_iam;
CREATE ROLE app_user LOGIN IN ROLE rds_iam;
CREATE DATABASE app OWNER app_user;
